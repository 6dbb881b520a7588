"""The baseline of the webhook benchmark: a FastAPI endpoint that only parses the JSON body.

Served by uvicorn exactly as `aiops-analyzer serve` serves the analyzer (uvicorn.run, no
access log, default loop and HTTP implementation), so the comparison measures the analyzer's
own work: auth, size limit, validation, scrubbing, the SQLite write and the metrics.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhook/alertmanager")
async def parse_only(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"alerts": len(body.get("alerts", []))}, status_code=202)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)
