def test_chat(gateway, openai_client, make_deployment):
    make_deployment("gpt-test")
    client = openai_client()
    reply = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Hello from the fake upstream."
