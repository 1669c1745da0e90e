"""The OpenAI Agents SDK (`openai-agents`) runs an agent with a function tool through the gateway's
Responses dialect (OpenAIResponsesModel on the official openai client), on the (fake) Gemini
upstream: the SDK executes the tool the model asked for and returns the model's final answer.
Tracing is off (it would export to api.openai.com)."""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def responses_model(gateway_url, api_key, fake_gemini):
    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=20)
    return OpenAIResponsesModel(model="gemini-3-flash-preview", openai_client=client)


@pytest.mark.parametrize("streamed", [False, True])
def test_agent_runs_its_function_tool_through_the_gateway(responses_model, fake_gemini, usage_rows, streamed):
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"Sunny in {city}"

    agent = Agent(name="forecaster", instructions="Answer with the tool.", tools=[get_weather], model=responses_model)
    fake_gemini.script("tool_calls", on="generate", calls=[("get_weather", {"city": "Lima"})])
    if streamed:

        async def run():
            result = Runner.run_streamed(agent, "Weather in Lima?")
            async for _ in result.stream_events():
                pass
            return result

        result = asyncio.run(run())
    else:
        result = Runner.run_sync(agent, "Weather in Lima?")
    assert asked == ["Lima"]
    # The fake's unscripted answer to a function response quotes it.
    assert result.final_output == 'Tool said: [{"result": "Sunny in Lima"}]'
    calls = [r for r in fake_gemini.requests if "generateContent" in r["path"] or "GenerateContent" in r["path"]]
    assert len(calls) == 2
    assert calls[0]["json"]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert calls[0]["json"]["systemInstruction"]["parts"][0]["text"] == "Answer with the tool."
    rows = usage_rows()
    assert [(r.dialect, r.status, r.streamed) for r in rows] == [("responses", 200, streamed)] * 2
