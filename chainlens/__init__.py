"""ChainLens composition root: settings, resources, CLI and the chat service."""
