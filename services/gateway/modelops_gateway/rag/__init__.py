"""RAG routes: collections, documents, index jobs, search and answers, relayed to the rag service."""
