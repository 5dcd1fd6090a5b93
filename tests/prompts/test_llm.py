"""The LLM source through the real openai SDK, answered by an in-memory transport."""

import json

import httpx
import pytest
from openai import OpenAI

from aesthetic_platform.prompts import LLMPromptError, LLMPromptSource, PromptBatchConfig, PromptLLMConfig, build_prompt_batch


def client_answering(content: str, seen: list | None = None) -> OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            },
        )

    return OpenAI(base_url="http://llm.test/v1", api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(handler)))


REPLY = json.dumps(
    {
        "prompts": [
            {
                "text": "A minimalist poster of a perfume bottle, pink and white palette, centered composition",
                "language": "en",
                "palette": ["pink", "white"],
                "layout": "centered",
            },
            {"text": "一张国潮风格的海报，主体是一盏灯笼，配色为红色与金色", "language": "zh"},
        ]
    }
)


def test_llm_reply_becomes_prompt_records():
    seen: list = []
    records = LLMPromptSource(PromptLLMConfig(model="m")).generate(2, ("en", "zh"), client=client_answering(REPLY, seen))
    assert [r.language for r in records] == ["en", "zh"]
    assert seen[0]["response_format"] == {"type": "json_object"}
    assert seen[0]["model"] == "m"


def test_fenced_reply_is_accepted():
    records = LLMPromptSource(PromptLLMConfig(model="m")).generate(2, ("en",), client=client_answering(f"```json\n{REPLY}\n```"))
    assert len(records) == 2


@pytest.mark.parametrize("content", ["sorry, I cannot help", '{"prompts": [{"txt": "x"}]}', '{"prompts": []}'])
def test_bad_reply_is_a_clear_error(content):
    with pytest.raises(LLMPromptError, match="prompt"):
        LLMPromptSource(PromptLLMConfig(model="m")).generate(1, ("en",), client=client_answering(content))


def test_llm_source_through_batch_builder(monkeypatch):
    source = LLMPromptSource(PromptLLMConfig(model="m"))
    monkeypatch.setattr("aesthetic_platform.prompts.llm.openai_client", lambda config: client_answering(REPLY))
    specs = build_prompt_batch("b1", PromptBatchConfig(source="llm", count=2), llm=source)
    assert {s.source for s in specs} == {"llm"}
    assert specs[1].palette == ["red", "gold"]
    assert specs[1].subject == "lantern"
