"""The AWS backend: S3, DynamoDB, Step Functions, SQS, task tokens, EC2 and IMDSv2, behind the
pipeline's ports; every botocore error becomes one of ``tilefan.errors`` here."""
