"""The AWS runtime: one Step Functions execution per job."""
