"""AWS list prices the planner and the cost model charge, in one place.

us-east-1 (N. Virginia), on-demand list prices in USD as published on the services'
pricing pages in November 2024 (DynamoDB's on-demand prices are those after its
1 November 2024 cut). No free tier, no Savings Plans, no volume tiers: Lambda's x86 price
is the first tier (up to 6 billion GB-s a month). A deployment in another region, or
after a price change, edits these figures; docs/cost-model.md says how each is used.
"""

from __future__ import annotations

PRICES_AS_OF = "2024-11 (us-east-1 list prices)"

LAMBDA_GB_S = 0.0000166667  # x86 duration, per GB-second
LAMBDA_REQUEST = 0.20 / 1e6  # per invocation
SFN_TRANSITION = 0.025 / 1000  # Standard workflows, per state transition
DYNAMO_WRITE_UNIT = 0.625 / 1e6  # on-demand write request unit (1 KB; twice that in a transaction)
DYNAMO_READ_UNIT = 0.125 / 1e6  # on-demand read request unit (4 KB strongly consistent)
S3_PUT = 0.005 / 1000  # PUT, COPY, POST, LIST (and UploadPartCopy, a PUT) per request
S3_GET = 0.0004 / 1000  # GET and all other requests
# Not a list price: spot prices move with the market, so this is a planning figure for the
# launch template's c7i.4xlarge (on demand $0.714 an hour), tuned by TILEFAN_SPOT_HOUR_PRICE.
SPOT_HOUR = 0.25
