"""The same ceiling on the other HTTP stack measured: granian's RSGI interface (its fastest; a
Rust HTTP server calling Python), answering the same fixed JSON after reading the body.
Run by bench_serving.py from its own venv (.venvs/granian) as
`granian --interface rsgi --workers 1 --runtime-threads 1 --loop uvloop hello_rsgi:app`.
"""

BODY = b'{"result": [206.1, 68.2]}'
HEADERS = [("content-type", "application/json")]


async def app(scope, proto):
    await proto()  # the whole body
    proto.response_bytes(200, HEADERS, BODY)
