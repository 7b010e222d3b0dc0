"""Sans-IO HTTP/1.1: bytes in, events out, and the bytes we write. Nothing here imports asyncio."""
