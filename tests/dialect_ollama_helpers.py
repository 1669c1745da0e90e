"""What the tests/test_dialect_ollama_*.py modules share: a user message, usage, timings, the timestamp format."""

from __future__ import annotations

import re

from proxy_app.core import hub
from proxy_app.dialects.ollama.request import Timings

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
TIMINGS = Timings(total_ns=900, prompt_eval_ns=300, eval_ns=600)
USAGE = hub.Usage(prompt_tokens=7, completion_tokens=11)
USER = {"role": "user", "content": "hi"}
