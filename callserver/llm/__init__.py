"""LLM providers behind one streaming interface, plus retry / fallback / apology."""
