"""What only the Chalice app needs: the Lambda doors of the state machine's steps.

The library, the CLI and both backends live in the ``tilefan`` package; ``make package``
vendors its wheel into the deployment package beside this folder.
"""
