"""The hot integer kernels as Cortex-M0+ machine code (``@micropython.asm_thumb``), viper for the rest.

Compile with ``mpy-cross -march=armv6m`` (the inline assembler is enabled in the
stock RP2040 firmware). Data layout, results and every other kernel are
kernels_viper's (offset-binary int8 weights and KV cache, int32 activations):
this module only replaces the dot-product loops, which are ~all of a token's
multiply-accumulates.

* ``mv(prog)``: one or more matrix-vector products (a "program" of segments) with
  REQUANT and the clamp of LINEAR_ACT / LINEAR_RES / the logits, in one call.
  A program is a bytearray of int32 words built once by :func:`program`:
  ``[n_segments, (w, rq, out, rows, cols, a, mode, scratch, scratch, scratch) * n]``
  with the buffers' addresses (:func:`addr`); mode 0 act, 1 residual, 2 logits.
* ``attn(params, npos)``: appends k and v to the KV cache at position npos - 1,
  then every head's scores, integer softmax (one software division per head,
  FORMAT.md section 6.4) and the probability-weighted sum of V.

The inner loops are unrolled by 4 (ldrb + ldr + mul + add: 6 cycles a MAC);
offset binary: ``sum w*a = sum (w + 128)*a - 128*sum a``.  The registers
r8-r11 are never touched; r0-r7 are saved by the assembler's prologue.

Importing this module fails (SyntaxError, ValueError: wrong .mpy arch) where
the port has no Thumb inline assembler; it also checks its own arithmetic on
a small case at import and raises ImportError on a mismatch, so engine.py falls
back to the viper kernels.
"""
import micropython

from .kernels_viper import (act_lut, argmax, attend, buffer, embed, linear_act, linear_logits, linear_res,  # noqa: F401
                            mul_requant, prepare, rmsnorm, rope, sample, store_kv, tensor)

NAME = "asm"
LAYOUT = "viper"    # the same buffers as kernels_viper: a model prepared for one runs with the other

SEG_WORDS = 10      # words per mv segment
MODE_ACT = 0
MODE_RES = 1
MODE_LOGITS = 2
ATTN_WORDS = 24     # words of an attn parameter block


@micropython.asm_thumb
def _addr(r0):
    """The address of a buffer's data (an argument with the buffer protocol arrives as its pointer)."""
    mov(r0, r0)


@micropython.asm_thumb
def _put(r0, r1, r2):
    """words(r0)[r2] = r1 (a buffer's address when r1 is a buffer): no int object is made."""
    lsl(r2, r2, 2)
    add(r0, r0, r2)
    str(r1, [r0, 0])


def addr(buf):
    return _addr(buf)


def program(segments):
    """A mv program: segments = [(w, rq, out, rows, cols, a, mode), ...] (buffers, ints)."""
    p = bytearray(4 + 4 * SEG_WORDS * len(segments))
    _put(p, len(segments), 0)
    for i, (w, rq, out, rows, cols, a, mode) in enumerate(segments):
        b = 1 + i * SEG_WORDS
        _put(p, w, b)
        _put(p, rq, b + 1)
        _put(p, out, b + 2)
        _put(p, rows, b + 3)
        _put(p, cols, b + 4)
        _put(p, a, b + 5)
        _put(p, mode, b + 6)
        _put(p, cols & ~3, b + 7)
        _put(p, cols & 3, b + 8)
    return p


def attn_params(q, kc, vc, scores, lut, out, dim, hd, m, s, k, v):
    """The parameter block of attn() for one layer (its caches, the shared q/k/v/out/score buffers)."""
    p = bytearray(4 * ATTN_WORDS)
    for i, val in enumerate((q, kc, vc, scores, lut, out, dim, hd, m, s, k, v)):
        _put(p, val, i)
    _put(p, hd & ~3, 18)
    _put(p, hd & 3, 19)
    return p


@micropython.asm_thumb
def mv(r0):
    # r0: the program; r7: segment pointer (walks), r0 reused inside rows
    ldr(r1, [r0, 0])          # segments left
    add(r7, r0, 4)
    label(SEG)
    push({r1})
    # corr = 128 * sum(a[0..cols-1]) -> seg[9]
    ldr(r2, [r7, 20])         # a
    ldr(r3, [r7, 16])         # cols
    mov(r4, 0)
    label(CORR)
    ldr(r5, [r2, 0])
    add(r4, r4, r5)
    add(r2, 4)
    sub(r3, 1)
    bne(CORR)
    lsl(r4, r4, 7)
    str(r4, [r7, 36])
    ldr(r1, [r7, 0])          # w (walks through the rows)
    ldr(r0, [r7, 12])         # rows left
    ldr(r3, [r7, 4])          # rq (walks)
    ldr(r2, [r7, 8])          # out (walks)
    push({r2, r3})            # sp[0] = out, sp[4] = rq
    label(ROW)
    ldr(r2, [r7, 20])         # a
    ldr(r3, [r7, 28])         # cols & ~3
    add(r3, r3, r1)           # end of the unrolled part
    mov(r4, 0)
    cmp(r1, r3)
    beq(TAIL)
    label(DOT4)
    ldrb(r5, [r1, 0])
    ldr(r6, [r2, 0])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r1, 1])
    ldr(r6, [r2, 4])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r1, 2])
    ldr(r6, [r2, 8])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r1, 3])
    ldr(r6, [r2, 12])
    mul(r5, r6)
    add(r4, r4, r5)
    add(r1, 4)
    add(r2, 16)
    cmp(r1, r3)
    bcc(DOT4)
    label(TAIL)
    ldr(r3, [r7, 32])         # cols & 3
    cmp(r3, 0)
    beq(REQ)
    label(DOT1)
    ldrb(r5, [r1, 0])
    ldr(r6, [r2, 0])
    mul(r5, r6)
    add(r4, r4, r5)
    add(r1, 1)
    add(r2, 4)
    sub(r3, 1)
    bne(DOT1)
    label(REQ)
    ldr(r5, [r7, 36])
    sub(r4, r4, r5)           # acc = sum w * a
    pop({r2, r3})             # out, rq
    ldrh(r5, [r3, 0])         # m (uint16 pairs, smd.load)
    asr(r6, r4, 15)
    mul(r6, r5)               # (acc >> 15) * m
    lsl(r4, r4, 17)
    lsr(r4, r4, 17)           # acc & 32767
    mul(r4, r5)
    lsr(r4, r4, 15)
    add(r4, r4, r6)           # floor(acc * m / 2^15)
    ldrh(r5, [r3, 2])         # s
    mov(r6, 1)
    lsl(r6, r5)
    lsr(r6, r6, 1)            # 1 << (s - 1), or 0 when s == 0
    add(r4, r4, r6)
    asr(r4, r5)               # RSHR(v, s)
    add(r3, 4)
    ldr(r5, [r7, 24])         # mode
    cmp(r5, 1)
    beq(RES)
    bgt(LOGITS)
    mov(r5, 127)
    label(CLAMP)              # clamp r4 to [-r5, r5], store at out
    cmp(r4, r5)
    ble(C1)
    mov(r4, r5)
    label(C1)
    neg(r5, r5)
    cmp(r4, r5)
    bge(C2)
    mov(r4, r5)
    label(C2)
    str(r4, [r2, 0])
    add(r2, 4)
    push({r2, r3})
    sub(r0, 1)
    bne(ROW)
    pop({r2, r3})
    pop({r1})
    add(r7, 40)
    sub(r1, 1)
    bne(SEG)
    b(END)
    label(RES)
    ldr(r5, [r2, 0])
    add(r4, r4, r5)
    mov(r5, 1)
    lsl(r5, r5, 15)
    sub(r5, 1)                # 32767
    b(CLAMP)
    label(LOGITS)
    mov(r5, 1)
    lsl(r5, r5, 29)
    b(CLAMP)
    label(END)
    mov(r0, 0)


@micropython.asm_thumb
def attn(r0, r1):
    # r0: parameter block (words: 0 q, 1 kc, 2 vc, 3 scores, 4 lut, 5 out, 6 dim, 7 hd, 8 m, 9 s,
    # 10 k, 11 v, 12 npos, 13 h0, 14 qcorr, 15 top, 16 half, 17 inv / pcorr, 18 hd & ~3, 19 hd & 3)
    str(r1, [r0, 48])
    # -- store k, v at position npos - 1 (offset binary) --
    ldr(r2, [r0, 24])         # dim
    sub(r3, r1, 1)
    mul(r3, r2)
    ldr(r4, [r0, 4])
    add(r4, r4, r3)
    ldr(r5, [r0, 8])
    add(r5, r5, r3)
    ldr(r6, [r0, 40])
    ldr(r7, [r0, 44])
    label(KV)
    ldr(r3, [r6, 0])
    add(r3, 128)
    strb(r3, [r4, 0])
    ldr(r3, [r7, 0])
    add(r3, 128)
    strb(r3, [r5, 0])
    add(r4, 1)
    add(r5, 1)
    add(r6, 4)
    add(r7, 4)
    sub(r2, 1)
    bne(KV)
    # half = 1 << (s - 1) or 0
    ldr(r5, [r0, 36])
    mov(r6, 1)
    lsl(r6, r5)
    lsr(r6, r6, 1)
    str(r6, [r0, 64])
    mov(r1, 0)
    str(r1, [r0, 52])         # h0 = 0
    label(HEAD)
    # qcorr = 128 * sum q[h0 .. h0 + hd - 1]
    ldr(r2, [r0, 0])
    ldr(r1, [r0, 52])
    lsl(r3, r1, 2)
    add(r2, r2, r3)           # qh
    ldr(r3, [r0, 28])
    mov(r4, 0)
    label(QS)
    ldr(r6, [r2, 0])
    add(r4, r4, r6)
    add(r2, 4)
    sub(r3, 1)
    bne(QS)
    lsl(r4, r4, 7)
    str(r4, [r0, 56])
    mov(r4, 1)
    lsl(r4, r4, 30)
    neg(r4, r4)
    str(r4, [r0, 60])         # top = -2^30
    # -- scores[t] = sum_d q[h0 + d] * K[t][h0 + d], t < npos --
    ldr(r1, [r0, 4])
    ldr(r3, [r0, 52])
    add(r1, r1, r3)           # K row of t = 0, at h0
    ldr(r7, [r0, 12])         # scores (walks)
    label(ST)
    push({r7})
    mov(r3, r1)               # k pointer
    ldr(r2, [r0, 0])
    ldr(r5, [r0, 52])
    lsl(r5, r5, 2)
    add(r2, r2, r5)           # q pointer
    ldr(r7, [r0, 72])
    add(r7, r7, r3)           # end of the unrolled part
    mov(r4, 0)
    cmp(r3, r7)
    beq(STT)
    label(SD4)
    ldrb(r5, [r3, 0])
    ldr(r6, [r2, 0])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r3, 1])
    ldr(r6, [r2, 4])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r3, 2])
    ldr(r6, [r2, 8])
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r3, 3])
    ldr(r6, [r2, 12])
    mul(r5, r6)
    add(r4, r4, r5)
    add(r3, 4)
    add(r2, 16)
    cmp(r3, r7)
    bcc(SD4)
    label(STT)
    ldr(r7, [r0, 76])         # hd & 3
    cmp(r7, 0)
    beq(SDONE)
    label(SD1)
    ldrb(r5, [r3, 0])
    ldr(r6, [r2, 0])
    mul(r5, r6)
    add(r4, r4, r5)
    add(r3, 1)
    add(r2, 4)
    sub(r7, 1)
    bne(SD1)
    label(SDONE)
    pop({r7})
    ldr(r5, [r0, 56])
    sub(r4, r4, r5)
    str(r4, [r7, 0])
    add(r7, 4)
    ldr(r5, [r0, 60])
    cmp(r4, r5)
    ble(NOTOP)
    str(r4, [r0, 60])
    label(NOTOP)
    ldr(r5, [r0, 24])
    add(r1, r1, r5)           # next position's K row
    ldr(r5, [r0, 12])
    sub(r5, r7, r5)
    lsr(r5, r5, 2)            # positions done
    ldr(r6, [r0, 48])
    cmp(r5, r6)
    bcc(ST)
    # -- w[t] = EXP_LUT[REQUANT(top - sc[t], m, s)] (0 past the table); W = sum w --
    ldr(r7, [r0, 12])
    ldr(r3, [r0, 48])
    ldr(r1, [r0, 32])         # m
    ldr(r2, [r0, 36])         # s
    mov(r4, 0)
    label(SM)
    ldr(r5, [r7, 0])
    ldr(r6, [r0, 60])
    sub(r6, r6, r5)           # top - sc >= 0
    asr(r5, r6, 15)
    mul(r5, r1)
    lsl(r6, r6, 17)
    lsr(r6, r6, 17)
    mul(r6, r1)
    lsr(r6, r6, 15)
    add(r5, r5, r6)
    ldr(r6, [r0, 64])
    add(r5, r5, r6)
    asr(r5, r2)               # idx
    lsr(r6, r5, 10)
    bne(SMZ)
    lsl(r5, r5, 1)
    ldr(r6, [r0, 16])
    add(r5, r5, r6)
    ldrh(r5, [r5, 0])
    b(SMW)
    label(SMZ)
    mov(r5, 0)
    label(SMW)
    str(r5, [r7, 0])
    add(r4, r4, r5)
    add(r7, 4)
    sub(r3, 1)
    bne(SM)
    # -- R = 2^30 // W (restoring division, 31 quotient bits) --
    mov(r1, 1)
    lsl(r1, r1, 31)           # 2^30 << 1: the dividend's bits leave through the carry
    mov(r2, 0)                # quotient
    mov(r3, 0)                # remainder
    mov(r5, 31)
    label(DIV)
    lsl(r1, r1, 1)
    adc(r3, r3)
    lsl(r2, r2, 1)
    cmp(r3, r4)
    bcc(DIVN)
    sub(r3, r3, r4)
    add(r2, 1)
    label(DIVN)
    sub(r5, 1)
    bne(DIV)
    # -- pr[t] = (w[t] * R) >> 15; pcorr = 128 * sum pr --
    ldr(r7, [r0, 12])
    ldr(r3, [r0, 48])
    mov(r4, 0)
    label(PR)
    ldr(r5, [r7, 0])
    mul(r5, r2)
    lsr(r5, r5, 15)
    str(r5, [r7, 0])
    add(r4, r4, r5)
    add(r7, 4)
    sub(r3, 1)
    bne(PR)
    lsl(r4, r4, 7)
    str(r4, [r0, 68])
    # -- out[h0 + d] = RSHR(sum_t pr[t] * V[t][h0 + d], 15) --
    ldr(r1, [r0, 24])         # dim: the stride of V's columns
    ldr(r2, [r0, 8])
    ldr(r3, [r0, 52])
    add(r2, r2, r3)           # V at (0, h0)
    ldr(r7, [r0, 20])
    lsl(r3, r3, 2)
    add(r7, r7, r3)           # out + h0
    ldr(r3, [r0, 28])         # hd: columns left
    label(VD)
    push({r2, r3, r7})
    ldr(r5, [r0, 12])         # pr (walks)
    ldr(r3, [r0, 48])         # positions left
    mov(r4, 0)
    label(VT)
    ldrb(r6, [r2, 0])
    ldr(r7, [r5, 0])
    mul(r6, r7)
    add(r4, r4, r6)
    add(r2, r2, r1)
    add(r5, 4)
    sub(r3, 1)
    bne(VT)
    ldr(r5, [r0, 68])
    sub(r4, r4, r5)
    mov(r5, 1)
    lsl(r5, r5, 14)
    add(r4, r4, r5)
    asr(r4, r4, 15)
    pop({r2, r3, r7})
    str(r4, [r7, 0])
    add(r7, 4)
    add(r2, 1)
    sub(r3, 1)
    bne(VD)
    # -- next head --
    ldr(r3, [r0, 52])
    ldr(r5, [r0, 28])
    add(r3, r3, r5)
    str(r3, [r0, 52])
    cmp(r3, r1)
    bcs(END)
    b(HEAD)
    label(END)
    mov(r0, 0)


def _self_test():
    """A 3x5 LINEAR_ACT, a residual row and one attention step against kernels_viper: ImportError if wrong."""
    w = bytearray(b"\x05\xfb\x7f\x81\x00\x02\x03\x04\x09\xf0\x11\x22\x33\x44\x55")
    a = buffer("a", 5)
    rq = bytearray(12)        # uint16 (m, s) pairs, as smd.load keeps them
    x1 = buffer("a", 3)
    x2 = buffer("a", 3)
    for i, (av, m, s) in enumerate(((-7, 40000, 3), (127, 65535, 0), (-127, 1000, 5), (3, 0, 0), (100, 0, 0))):
        _put(a, av, i)
        if i < 3:
            rq[4 * i], rq[4 * i + 1], rq[4 * i + 2] = m & 255, m >> 8, s
    prepare(w, len(w))
    mv(program([(w, rq, x1, 3, 5, a, MODE_ACT)]))
    linear_act(x2, w, a, rq, 3, 5, 0)
    if x1 != x2:
        raise ImportError("asm_thumb kernels disagree with the viper kernels on this port")


_self_test()
