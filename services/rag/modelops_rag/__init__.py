"""ModelOps RAG: collections of documents indexed into LanceDB by Kafka jobs, hybrid search, cited answers."""
