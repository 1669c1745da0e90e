"""`item_reference` input items through the real gateway with the official openai SDK: resolved
against the key's user's stored items (this response's history or any recent stored response),
another user's or an unknown id is a 400 in the OpenAI shape."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def generate_requests(fake):
    return [r for r in fake.requests if ":generateContent" in r["path"] or ":streamGenerateContent" in r["path"]]


def test_item_reference_resolves_stored_input_and_output_items(openai_client, fake_gemini):
    first = openai_client.responses.create(model="gemini-2.5-flash", input="Lima?")
    (message,) = first.output
    (asked,) = openai_client.responses.input_items.list(first.id).data
    # Without previous_response_id: both items are found among the user's stored responses.
    second = openai_client.responses.create(
        model="gemini-2.5-flash",
        input=[
            {"type": "item_reference", "id": asked.id},
            {"type": "item_reference", "id": message.id},
            {"role": "user", "content": "And Quito?"},
        ],
    )
    contents = generate_requests(fake_gemini)[-1]["json"]["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "Lima?"),
        ("model", message.content[0].text),
        ("user", "And Quito?"),
    ]
    # What the upstream saw is stored expanded: the references are the items themselves.
    stored = openai_client.responses.input_items.list(second.id, order="asc").data
    assert [i.id for i in stored[:2]] == [asked.id, message.id]


def test_item_reference_of_another_user_or_unknown_is_a_400(openai_client, fake_gemini, gateway_url, issue):
    from django.contrib.auth import get_user_model

    first = openai_client.responses.create(model="gemini-2.5-flash", input="Lima?")
    bob = get_user_model().objects.create_user(username="bob", password="pw-bob-12345")
    other = openai.OpenAI(base_url=f"{gateway_url}/v1", api_key=issue(bob, name="b"), max_retries=0, timeout=20)
    for client, ref in ((other, first.output[0].id), (openai_client, "msg_nope")):
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="gemini-2.5-flash", input=[{"type": "item_reference", "id": ref}])
        assert info.value.body["param"] == "input[0].id" and ref in info.value.body["message"]
    other.close()
