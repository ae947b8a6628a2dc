"""The live chat engine: conversations, messages, presence, routing and the event hub.

See docs/chat-design.md for the modules and docs/protocol.md for the wire.
"""
