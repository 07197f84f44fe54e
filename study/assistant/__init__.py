"""The AI assistant of an arm: the chat-completions client, building each request from the
protocol, participant memory and goals, and the interaction log (with the ingest API for
assistants that run elsewhere). Nothing here knows of Flask."""
