"""Prompts for a router over four targets, as `{prompt, target}` rows: person descriptions for the demo's
record-extraction adapter (`record`, worded unlike the sentences it was trained on), requests for SQL (`sql`),
questions about Python that the Python documentation answers (`docs`, a RAG collection) and everyday requests for
the base model (`chat`).

Each target has its phrasings; `split` keeps some phrasings of every target for the held-out rows only, so a router
is measured on wordings it never saw, not on new slot values in known sentences. The targets share vocabulary on
purpose (cities, names, sorting, lists) so that words alone do not decide."""

from __future__ import annotations

import random

# Words read better than one per line (SIM905).
NAMES = "Maria Lopez,John Smith,Aiko Tanaka,Omar Haddad,Lena Fischer,Priya Patel,Ivan Petrov,Chloe Martin".split(",")  # noqa: SIM905
CITIES = "Lisbon Berlin Tokyo Cairo Madrid Chicago Mumbai Toronto Oslo Paris Lagos Prague".split()  # noqa: SIM905
TABLES = "customers orders employees invoices products shipments students flights".split()  # noqa: SIM905
COLUMNS = "age city salary total price country created_at status".split()  # noqa: SIM905
TOPICS = (  # noqa: SIM905
    "a list comprehension,a generator,a context manager,a decorator,an exception,a dictionary,a tuple,"
    "a lambda,a class method,a string format specification,the global statement,an f-string,slicing,"
    "the with statement,a set,a coroutine"
).split(",")
THEMES = "the sea,autumn,a city at night,friendship,coffee,a long train ride,the mountains,rain".split(",")  # noqa: SIM905

PHRASINGS: dict[str, list[str]] = {
    "record": [
        "{name} just turned {age}; home is {city}.",
        "Profile: {name}, {age} years, {city}.",
        "Our guest {name} came from {city} and is {age}.",
        "{name} has been living in {city} for years and is now {age}.",
        "New hire: {name}, age {age}, based in {city}.",
        "Note: {name} ({city}) is {age} years old.",
        "Passenger {name}, {age}, travelling from {city}.",
        "{name}, aged {age}, resides in {city}.",
        "Member since today: {name} of {city}, {age}.",
        "{city} resident {name} celebrated turning {age}.",
        "Contact card — {name}, {age}, {city}.",
        "Patient {name} is {age} and lives in {city}.",
        "{name} writes SQL for a bank in {city} and is {age}.",
        "{name} teaches Python in {city}; {name} is {age}.",
        "Poet {name}, {age}, lives in {city}.",
    ],
    "sql": [
        "Write a SQL query that lists all {table} with {column} above {age}.",
        "Give me the SQL to count {table} grouped by {column}.",
        "How would I select the ten newest {table} in SQL?",
        "SQL: return every row of {table} where {column} is null.",
        "Write a query joining {table} and {table2} on their ids.",
        "I need a SELECT that sorts {table} by {column} descending.",
        "Compose a SQL statement deleting {table} older than {age} days.",
        "What SQL finds duplicate {column} values in {table}?",
        "Translate to SQL: average {column} of {table} per {column2}.",
        "Write SQL to update the {column} of {table} in {city}.",
        "Create a table for {table} with an id and a {column} column.",
        "Query the {table} table for the maximum {column}.",
        "Which rows of {table} have a {column} like the one {name} has?",
        "How do I write a query that lists {table} in {city}?",
        "Show the SQL for the {column} of {table}, the way a Python list would hold it.",
    ],
    "docs": [
        "How do I use {topic} in Python?",
        "What does {topic} do in Python?",
        "Explain {topic} in Python with an example.",
        "When should I use {topic} in my Python code?",
        "What is the difference between {topic} and {topic2} in Python?",
        "Where does the Python documentation describe {topic}?",
        "Can you show me the syntax of {topic} in Python?",
        "Why does Python have {topic}?",
        "In Python, how is {topic} evaluated?",
        "Is {topic} in Python the same as in other languages?",
        "What are common mistakes with {topic} in Python?",
        "Python question: how does {topic} work?",
        "How do I query {table} from Python with the sqlite3 module?",
        "Write a Python example that shows {topic}.",
        "My friend {name} asked me how {topic} works in Python. What do I say?",
    ],
    "chat": [
        "Write a short poem about {theme}.",
        "Tell me a joke about {city}.",
        "Give me three tips for a weekend trip to {city}.",
        "What should I cook tonight for {name}?",
        "Suggest a name for a cat that loves {theme}.",
        "Write a friendly birthday message for {name}.",
        "I feel tired after work in {city}. Any advice?",
        "Describe {theme} in two sentences.",
        "Recommend a book to read about {theme}.",
        "Help me write a thank-you note to my neighbour in {city}.",
        "What is a fun thing to do on a rainy day in {city}?",
        "Write a haiku about {theme}.",
        "Write a poem about {topic} in Python.",
        "Tell me something nice about {name}, who lives in {city}.",
        "Tell me a joke about SQL and {table}.",
    ],
}
TARGETS = tuple(PHRASINGS)


def prompt(template: str, rng: random.Random) -> str:
    table, table2 = rng.sample(TABLES, 2)
    column, column2 = rng.sample(COLUMNS, 2)
    topic, topic2 = rng.sample(TOPICS, 2)
    return template.format(
        name=rng.choice(NAMES),
        age=rng.randint(18, 90),
        city=rng.choice(CITIES),
        table=table,
        table2=table2,
        column=column,
        column2=column2,
        topic=topic,
        topic2=topic2,
        theme=rng.choice(THEMES),
    )


def split(
    seed: int = 0, train_per_target: int = 100, held_out_per_target: int = 50, held_out_phrasings: int = 3
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train rows, held-out rows): the held-out rows use `held_out_phrasings` phrasings of each target that no
    train row uses."""
    rng = random.Random(seed)
    train: list[dict[str, str]] = []
    held_out: list[dict[str, str]] = []
    for target, templates in PHRASINGS.items():
        shuffled = templates[:]
        rng.shuffle(shuffled)
        test_templates, train_templates = shuffled[:held_out_phrasings], shuffled[held_out_phrasings:]
        train += [
            {"prompt": prompt(rng.choice(train_templates), rng), "target": target} for _ in range(train_per_target)
        ]
        held_out += [
            {"prompt": prompt(test_templates[i % len(test_templates)], rng), "target": target}
            for i in range(held_out_per_target)
        ]
    rng.shuffle(train)
    return train, held_out
