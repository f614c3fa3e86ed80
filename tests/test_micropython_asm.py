"""The asm_thumb kernels (device/micropython/starmind_mp/kernels_asm.py), executed by CPython.

A small interpreter of the Thumb-1 subset the kernels use (MicroPython's inline-assembler
syntax, read from the module's source with ``ast``; flags N Z C V, 32-bit registers, byte
addressed memory over the engine's bytearrays) runs the real kernel source, so the bit-exact
arithmetic of the machine code is checked here against the golden vectors, on machines without
the emulated firmware. (test_micropython_package.py runs them on the real interpreter.)
"""
from __future__ import annotations

import ast
import json
import sys
import types

import pytest

from starmind_lib.devices.runtime import RUNTIME_DIR, device_runtime
from test_micropython import REFERENCE, _viper, check_engine_against_golden, ptr8, ptr16, ptr32, uint

mp = device_runtime()
M32 = 0xFFFFFFFF
SRC = (RUNTIME_DIR / "starmind_mp" / "kernels_asm.py").read_text()
TREE = ast.parse(SRC)


class Memory:
    """Buffers mapped at fake addresses (0x20000000 + ...), as the firmware's heap would."""

    def __init__(self):
        self.regions = []   # (base, buffer)
        self.by_id = {}
        self.next = 0x20000000

    def addr(self, buf):
        key = id(buf)
        if key not in self.by_id:
            self.by_id[key] = (self.next, buf)
            self.regions.append((self.next, buf))
            self.next += (len(buf) + 64) & ~15
        return self.by_id[key][0]

    def find(self, a, n):
        for base, buf in self.regions:
            if base <= a and a + n <= base + len(buf):
                return buf, a - base
        raise IndexError("access of %d bytes at 0x%x outside every buffer" % (n, a))

    def load(self, a, n):
        buf, off = self.find(a, n)
        return int.from_bytes(bytes(buf[off:off + n]), "little")

    def store(self, a, n, v):
        buf, off = self.find(a, n)
        buf[off:off + n] = (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


MEM = Memory()


def _s32(v):
    v &= M32
    return v - (1 << 32) if v & 0x80000000 else v


class Thumb:
    """One assembled function: a list of (op, args) and its labels."""

    def __init__(self, fn_node):
        self.code, self.labels = [], {}
        for st in fn_node.body:
            if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):
                continue  # docstring
            call = st.value
            op = call.func.id
            if op == "label":
                self.labels[call.args[0].id] = len(self.code)
                continue
            self.code.append((op, [self._arg(a) for a in call.args]))
        self.nargs = len(fn_node.args.args)

    @staticmethod
    def _arg(a):
        if isinstance(a, ast.Name):
            return ("r", int(a.id[1:])) if a.id[0] == "r" and a.id[1:].isdigit() else ("l", a.id)
        if isinstance(a, ast.Constant):
            return ("i", a.value)
        if isinstance(a, ast.List):
            return ("m", int(a.elts[0].id[1:]), a.elts[1].value)
        if isinstance(a, ast.Set):
            return ("s", sorted(int(e.id[1:]) for e in a.elts))
        raise ValueError(ast.dump(a))

    def __call__(self, *args):
        r = [0] * 16
        for i, a in enumerate(args):
            r[i] = (a & M32) if isinstance(a, int) else MEM.addr(a)
        n = z = c = v = False
        stack = []
        pc, code = 0, self.code
        steps = 0
        while pc < len(code):
            op, a = code[pc]
            pc += 1
            steps += 1
            val = lambda x: r[x[1]] if x[0] == "r" else x[1] & M32  # noqa: E731
            if op in ("ldr", "ldrb", "ldrh"):
                size = {"ldr": 4, "ldrb": 1, "ldrh": 2}[op]
                r[a[0][1]] = MEM.load((r[a[1][1]] + a[1][2]) & M32, size)
                continue
            if op in ("str", "strb", "strh"):
                size = {"str": 4, "strb": 1, "strh": 2}[op]
                MEM.store((r[a[1][1]] + a[1][2]) & M32, size, r[a[0][1]])
                continue
            if op == "push":
                for x in reversed(a[0][1]):
                    stack.append(r[x])
                continue
            if op == "pop":
                for x in a[0][1]:
                    r[x] = stack.pop()
                continue
            if op[0] == "b" and op not in ("bic",):
                cond = op[1:]
                take = {"": True, "eq": z, "ne": not z, "cs": c, "cc": not c, "mi": n, "pl": not n,
                        "ge": n == v, "lt": n != v, "gt": (not z) and n == v, "le": z or n != v,
                        "hi": c and not z, "ls": (not c) or z}[cond]
                if take:
                    pc = self.labels[a[0][1]]
                continue
            d = a[0][1]
            if op == "mov":
                r[d] = val(a[1])
                if a[1][0] == "i":
                    n, z = False, r[d] == 0
                continue
            if op in ("add", "sub", "cmp", "adc", "neg"):
                if op == "neg":
                    x, y, cin, sub = 0, r[a[1][1]], 1, True
                elif op == "cmp":
                    x, y, cin, sub = r[d], val(a[1]), 1, True
                elif op == "adc":
                    x, y, cin, sub = r[d], r[a[1][1]], int(c), False
                else:
                    x, y = (r[d], val(a[1])) if len(a) == 2 else (r[a[1][1]], val(a[2]))
                    sub = op == "sub"
                    cin = 1 if sub else 0
                yy = (~y & M32) if sub else y
                full = x + yy + cin
                res = full & M32
                c = full > M32
                v = ((x ^ res) & (yy ^ res) & 0x80000000) != 0
                n, z = bool(res & 0x80000000), res == 0
                if op != "cmp":
                    r[d] = res
                continue
            if op == "mul":
                r[d] = (r[d] * r[a[1][1]]) & M32
                n, z = bool(r[d] & 0x80000000), r[d] == 0
                continue
            if op in ("lsl", "lsr", "asr"):
                if len(a) == 3:
                    x, sh = r[a[1][1]], a[2][1]
                else:
                    x, sh = r[d], r[a[1][1]] & 0xFF
                if sh == 0:
                    res = x
                elif op == "lsl":
                    res = (x << sh) & M32 if sh < 32 else 0
                    c = bool((x >> (32 - sh)) & 1) if sh <= 32 else False
                elif op == "lsr":
                    res = x >> sh if sh < 32 else 0
                    c = bool((x >> (sh - 1)) & 1) if sh <= 32 else False
                else:
                    sx = _s32(x)
                    res = (sx >> min(sh, 31)) & M32
                    c = bool((sx >> (min(sh, 32) - 1)) & 1)
                r[d] = res
                n, z = bool(res & 0x80000000), res == 0
                continue
            raise NotImplementedError(op)
        self.steps = steps
        return _s32(r[0])


def _asm_thumb(fn):
    for node in TREE.body:
        if isinstance(node, ast.FunctionDef) and node.name == fn.__name__:
            return Thumb(node)
    raise LookupError(fn.__name__)


@pytest.fixture(scope="module")
def asm_kernels():
    fake = types.ModuleType("micropython")
    fake.viper = _viper
    fake.asm_thumb = _asm_thumb
    fake.const = lambda x: x
    saved = {k: sys.modules.get(k) for k in ("micropython", "starmind_mp_asm_test", "starmind_mp_asm_test.kernels_viper")}
    sys.modules["micropython"] = fake
    try:
        pkg = types.ModuleType("starmind_mp_asm_test")
        pkg.__path__ = []
        viper = types.ModuleType("starmind_mp_asm_test.kernels_viper")
        viper.__dict__.update(ptr8=ptr8, ptr16=ptr16, ptr32=ptr32, uint=uint)
        vsrc = (RUNTIME_DIR / "starmind_mp" / "kernels_viper.py").read_text()
        exec(compile(vsrc, "kernels_viper.py", "exec", dont_inherit=True), viper.__dict__)
        sys.modules["starmind_mp_asm_test"] = pkg
        sys.modules["starmind_mp_asm_test.kernels_viper"] = viper
        mod = types.ModuleType("starmind_mp_asm_test.kernels_asm")
        mod.__package__ = "starmind_mp_asm_test"
        exec(compile(SRC, "kernels_asm.py", "exec", dont_inherit=True), mod.__dict__)  # runs _self_test too
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod


def test_asm_program_layout(asm_kernels):
    k = asm_kernels
    w, rq, out, a = bytearray(6), bytearray(16), k.buffer("a", 2), k.buffer("a", 3)
    p = k.program([(w, rq, out, 2, 3, a, k.MODE_RES)])
    words = list(memoryview(p).cast("i"))
    assert words[0] == 1 and len(words) == 1 + k.SEG_WORDS
    assert words[1:4] == [MEM.addr(w), MEM.addr(rq), MEM.addr(out)] and words[4:8] == [2, 3, MEM.addr(a), 1]
    assert words[8:10] == [0, 3]


SMALL = ["ref_tiny_learned", "ref_dim1_gelu", "ref_swiglu_untied"]


@pytest.mark.parametrize("name", SMALL)
def test_asm_kernels_reproduce_goldens(name, asm_kernels, monkeypatch):
    g = json.loads((REFERENCE / f"{name}.golden.json").read_text())
    monkeypatch.setattr(mp.engine, "load_kernels", lambda kind="auto": asm_kernels)
    model = mp.smd.load(str(REFERENCE / g["model"]))
    eng = mp.engine.IntEngine(model, "asm")
    assert eng.fast is not None, "weights in RAM: the engine runs the mv/attn programs"
    forward = eng.forward_token
    eng.forward_token = lambda tok, pos: list(memoryview(forward(tok, pos)).cast("i"))
    g = dict(g, sampled=g["sampled"][:1])
    check_engine_against_golden(eng, g)
