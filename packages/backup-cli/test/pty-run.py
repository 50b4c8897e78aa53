"""Run a command on a real pseudo-terminal and answer its password prompts.

usage: python3 pty-run.py ANSWERS_JSON COMMAND [ARGS...]
Each time the output ends with a question ("...: " after the last answer), the next answer is
typed followed by Enter. Prints one JSON document: {"output": all terminal output, "code": exit
code (128+N for a signal), "prompts": how many questions were answered}.
"""
import json
import os
import pty
import re
import select
import sys

answers = json.loads(sys.argv[1])
cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)

out = b""
mark = 0
given = 0
question = re.compile(rb"(?:assword[^\n]*|again): $")
while True:
    ready, _, _ = select.select([fd], [], [], 120)
    if not ready:
        os.kill(pid, 9)
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if given < len(answers) and question.search(out[mark:]):
        os.write(fd, answers[given].encode() + b"\r")
        given += 1
        mark = len(out)

_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"output": out.decode("utf8", "replace"), "code": code if code >= 0 else 128 - code, "prompts": given}))
