"""The ceiling: a bare ASGI app on Shipyard's stack (uvicorn + uvloop + httptools), no framework.

It reads the request body (as any scoring server must) and answers a fixed small JSON.
Run by bench_serving.py as `uvicorn hello_asgi:app --loop uvloop --http httptools --workers 1`.
"""

BODY = b'{"result": [206.1, 68.2]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the body
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
