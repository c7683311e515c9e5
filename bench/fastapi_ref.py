"""The original system's public API stack, as a reference for bench/api.pl.

FastAPI on uvicorn with an asyncpg pool, as the original public-api ran:
each request looks its API key up in PostgreSQL (the prefix, then the
HMAC-SHA256 of the secret under the server secret, as tools/dr-key makes
it) and reads the domain's latest scores, one row, then answers JSON.
Run by bench/api.pl with two workers beside an uncached node of the
module, on the same PostgreSQL and database:

    DR_REF_HOST=... DR_REF_PORT=... DR_REF_USER=... DR_REF_DB=... \
    DR_REF_SECRET_FILE=... python3 -m uvicorn fastapi_ref:app \
        --app-dir bench --workers 2 --port PORT
"""

import hashlib
import hmac
import json
import os

import asyncpg
from fastapi import FastAPI, Header, HTTPException

app = FastAPI()
pool = None

with open(os.environ["DR_REF_SECRET_FILE"], "rb") as f:
    SECRET = f.read().rstrip(b"\r\n ")

KEY_SQL = """
SELECT secret_hash, revoked_at IS NULL
       AND (expires_at IS NULL OR expires_at > now()) AS valid
  FROM api_keys WHERE prefix = $1
"""

ROW_SQL = """
SELECT d.domain, d.category, s.memory_score, s.ai_consensus, s.cohesion,
       s.models_tracking, s.response_count, s.trend, s.risk_level,
       s.details->'key_themes' AS key_themes, s.computed_at
  FROM domains d JOIN latest_scores s ON s.domain_id = d.id AND s.active
 WHERE d.domain = $1 AND d.active
"""


async def jsonb(con):
    await con.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                             schema="pg_catalog")


@app.on_event("startup")
async def startup():
    global pool
    pool = await asyncpg.create_pool(
        host=os.environ["DR_REF_HOST"], port=int(os.environ["DR_REF_PORT"]),
        user=os.environ["DR_REF_USER"], database=os.environ["DR_REF_DB"],
        min_size=4, max_size=8, init=jsonb)


@app.get("/api/domains/{domain}/public")
async def public(domain: str, x_api_key: str = Header(default="")):
    parts = x_api_key.split("_")
    if len(parts) != 3 or parts[0] != "dr":
        raise HTTPException(status_code=401, detail="an API key is needed")

    digest = hmac.new(SECRET, parts[2].encode(), hashlib.sha256).digest()

    async with pool.acquire() as con:
        key = await con.fetchrow(KEY_SQL, parts[1])
        if (key is None or not key["valid"]
                or not hmac.compare_digest(bytes(key["secret_hash"]), digest)):
            raise HTTPException(status_code=401, detail="unknown API key")
        row = await con.fetchrow(ROW_SQL, domain)

    if row is None:
        raise HTTPException(status_code=404, detail="no such domain")

    return {
        "domain": row["domain"],
        "ai_intelligence": {
            "memory_score": round(row["memory_score"], 1),
            "ai_consensus": round(row["ai_consensus"], 1),
            "cohesion": round(row["cohesion"], 1),
            "models_tracking": row["models_tracking"],
            "response_count": row["response_count"],
            "trend": row["trend"],
        },
        "business_profile": {
            "category": row["category"],
            "key_themes": row["key_themes"],
            "risk_level": row["risk_level"],
        },
        "updated_at": row["computed_at"].isoformat(),
    }
