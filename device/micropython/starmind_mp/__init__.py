"""Starmind's on-board runtime: run a `.smd` model (device/FORMAT.md) on MicroPython.

The same package runs on a Pico (MicroPython 1.27, asm_thumb and viper kernels
compiled to .mpy for armv6m: device/micropython/build_mpy.py), on MicroPython ports without a native emitter (the
WebAssembly port; CircuitPython) and on CPython (tests), where it picks the
pure-Python kernels automatically::

    from starmind_mp import smd, engine
    model = smd.load("/models/ref.smd")          # checks magic, version, both CRC-32s
    eng = engine.make_engine(model)              # int8 integer-only (or float32 model: float path)
    ids = eng.generate([1, 2, 3], 32, seed=7)    # the same ids as starmind_lib.intengine

    from starmind_mp import bench
    bench.run_model("/models/ref.smd", [1, 2, 3], 32)   # prints JSON lines (see bench.py)

Memory: every tensor is one buffer read with ``readinto`` (no per-row objects,
no large temporaries); every activation buffer and the int8 KV cache are
allocated once when the engine is built, so generating a token allocates nothing
on the viper path.
"""
VERSION = "1"
