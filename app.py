"""Chalice app: the REST API and the Lambda functions, as thin doors over chalicelib."""

from chalice import Chalice

app = Chalice(app_name="tilefan")
