# Starmind at boot: load the first model in /models that can read text, then leave the REPL
# to the user:  tell("Once upon a time")   or   loop()   (prompt> ... ; an empty line ends it).
# No host is needed: the prompt is encoded on the board and the story streams to the console.
import os
import sys

if "/lib" not in sys.path:
    sys.path.append("/lib")

teller = None
try:
    from starmind_mp import repl
    names = sorted(n for n in os.listdir("/models") if n.endswith(".smd") and not n.endswith(".f32.smd"))
    for name in names:
        try:
            teller = repl.Teller("/models/" + name)
            print("starmind: %s loaded; type  tell(\"Once upon a time\")  or  loop()" % name)
            break
        except (ValueError, MemoryError) as e:
            print("starmind: %s skipped: %s" % (name, e))
    if teller is None:
        print("starmind: no model with an encoder in /models")
except (OSError, ImportError) as e:
    print("starmind: not started:", e)


def tell(text, n_tokens=400, temperature_q8=200, top_k=20, seed=None):
    return teller.tell(text, n_tokens, temperature_q8, top_k, seed)


def loop(n_tokens=400):
    teller.loop(n_tokens)
