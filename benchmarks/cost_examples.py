"""The cost model's worked examples at the list prices: the table docs/cost-model.md prints.

The examples and the table are ``tilefan.domain.cost_examples`` (pure, handed a policy);
the prices are settings (``tilefan.settings.LIST_PRICES``), so the table is made here.

    PYTHONPATH=. .venv/bin/python benchmarks/cost_examples.py
"""

from __future__ import annotations

from tilefan.domain.cost_examples import table, worked_examples
from tilefan.settings import list_policy

if __name__ == "__main__":
    print(table(worked_examples(list_policy())))
