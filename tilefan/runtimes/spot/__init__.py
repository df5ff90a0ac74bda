"""The spot runtime: the worker loop that serves the state machine's spot branch on EC2."""
