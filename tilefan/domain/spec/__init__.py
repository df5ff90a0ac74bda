"""A job spec in every form: the request a client sends (plain dataclasses and the
pydantic models that validate it), the resolved frozen spec, and its stored form."""
