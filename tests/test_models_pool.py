import asyncio

import httpx

from agentkit import Message, ResponseDone
from agentkit.models import OpenAICompatible, WorkersAI
from agentkit.testing_server import WireServer

HI = [Message.user("hi")]


async def test_many_concurrent_requests_stay_within_the_connection_limit() -> None:
    async with WireServer(default="ok") as server:
        model = WorkersAI(
            account_id="acct",
            api_token="tok-0123456789",
            base_url=server.base_url,
            limits=httpx.Limits(max_connections=30),
        )
        async with model:
            results = await asyncio.wait_for(
                asyncio.gather(*(model.request(HI, []) for _ in range(150))), timeout=60
            )
        assert [r.text for r in results] == ["ok"] * 150
        assert len(server.requests) == 150 and server.violations == []
        assert 1 <= server.connections <= 30  # connections are reused, never more than allowed


async def test_streams_give_their_connection_back_even_when_abandoned() -> None:
    async with WireServer(default="a few words to stream") as server:
        model = OpenAICompatible(
            "m", base_url=server.openai_base_url, limits=httpx.Limits(max_connections=1)
        )
        async with model:
            for _ in range(3):
                events = model.stream(HI, [])
                first = await asyncio.wait_for(anext(events), timeout=5)
                assert first is not None
                await events.aclose()  # stop reading early
            done = [e async for e in model.stream(HI, [])]
            assert isinstance(done[-1], ResponseDone)
        assert len(server.requests) == 4
