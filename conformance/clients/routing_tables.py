"""Routing tables shared by the Python scenario files (RabbitMQ 3.10 results)."""

TOPIC_PATTERNS = ["a.b.c", "a.*.c", "a.#", "#", "*", "*.b.*", "#.c", "", "a.#.c", "*.*", "a.*.#"]
TOPIC_KEYS = ["a.b.c", "a.x.c", "a", "a.b", "a.b.c.d", "", "b", "x.b.y", "c", "a.c", "a.b.b.c"]
# key -> patterns that match it (RabbitMQ 3.10)
TOPIC_EXPECTED = {
    "a.b.c": ["a.b.c", "a.*.c", "a.#", "#", "*.b.*", "#.c", "a.#.c", "a.*.#"],
    "a.x.c": ["a.*.c", "a.#", "#", "#.c", "a.#.c", "a.*.#"],
    "a": ["a.#", "#", "*"],
    "a.b": ["a.#", "#", "*.*", "a.*.#"],
    "a.b.c.d": ["a.#", "#", "a.*.#"],
    "": ["#", ""],
    "b": ["#", "*"],
    "x.b.y": ["#", "*.b.*"],
    "c": ["#", "*", "#.c"],
    "a.c": ["a.#", "#", "#.c", "a.#.c", "*.*", "a.*.#"],
    "a.b.b.c": ["a.#", "#", "#.c", "a.#.c", "a.*.#"],
}

HEADER_BINDINGS = {
    "all": {"x-match": "all", "format": "pdf", "type": "report"},
    "any": {"x-match": "any", "format": "pdf", "type": "report"},
    "default_all": {"format": "zip"},
    "all_empty": {"x-match": "all"},
    "any_empty": {"x-match": "any"},
}
HEADER_MESSAGES = [
    ("both", {"format": "pdf", "type": "report"}, ["all", "any", "all_empty"]),
    ("both_plus", {"format": "pdf", "type": "report", "extra": "1"}, ["all", "any", "all_empty"]),
    ("format_only", {"format": "pdf"}, ["any", "all_empty"]),
    ("type_only", {"type": "report"}, ["any", "all_empty"]),
    ("wrong_value", {"format": "zip", "type": "log"}, ["default_all", "all_empty"]),
    ("none", None, ["all_empty"]),
]
