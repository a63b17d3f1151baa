#!/usr/bin/env python3
"""Runs the AVX512-BF16 micro-kernel (crates/kernels/src/pairs.rs,
`pairs::avx512::tile`) in an emulated Sapphire Rapids CPU and checks its sums
bit for bit against `vdpbf16ps`'s order (each lane adds the odd pair's
product, then the even one's, rounding to float32 after each), for every row
count and several depths.

This is how the kernel's machine code is tested on CPUs without AVX512-BF16
(the Rust tests run it natively where the CPU has it). It needs the release
build of the kernels' test binary, where the function is a leaf (debug
builds add precondition checks that call out):

    cargo test --release --locked -p recurrent-kernels --lib --no-run
    python scripts/check_pair_kernel.py [TEST_BINARY]

with `bochscpu-python` installed (scripts/emulate_kernel.py says how it is
run). Without a binary argument it asks cargo for the test binary's path.
Exits 0 when every case matches.
"""
import json
import os
import random
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulate_kernel import _dpbf16_lane, elf_segments, function_info, run_function  # noqa: E402

MR, NR = 8, 32


def test_binary() -> str:
    """The kernels' release test binary, built if needed."""
    out = subprocess.run(
        ["cargo", "test", "--release", "--locked", "-p", "recurrent-kernels", "--lib",
         "--no-run", "--message-format=json"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg["target"]["name"] == "recurrent_kernels":
            return msg["executable"]
    raise SystemExit("cargo built no recurrent_kernels test binary")


def bf16_word(rng: random.Random) -> int:
    """Two bf16 values of moderate size (no subnormals, which the CPU flushes)."""
    def half() -> int:
        x = rng.uniform(-2.0, 2.0)
        bits = struct.unpack("<I", struct.pack("<f", x))[0]
        return bits >> 16
    return half() | half() << 16


def f32_bits(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def main() -> int:
    elf = sys.argv[1] if len(sys.argv) > 1 else test_binary()
    info = function_info(elf, "pairs::avx512::tile")
    memory = elf_segments(elf)
    rng = random.Random(17)
    cases = failures = 0
    for rows in range(1, MR + 1):
        for kp in (0, 1, 2, 5, 16, 33):
            a = [bf16_word(rng) for _ in range(kp * rows)]
            b = [bf16_word(rng) for _ in range(kp * NR)]
            acc = [rng.uniform(-4.0, 4.0) for _ in range(MR * NR)]
            acc = list(struct.unpack(f"<{MR * NR}f", f32_bits(acc)))  # float32 values
            want = list(acc)
            for i in range(kp):
                for r in range(rows):
                    for j in range(NR):
                        want[r * NR + j] = _dpbf16_lane(
                            want[r * NR + j], a[i * rows + r], b[i * NR + j], "odd_first")
            out = run_function(
                info.code, [kp, rows, "a", "b", "acc"],
                {"a": struct.pack(f"<{len(a)}I", *a) or b"\0" * 4,
                 "b": struct.pack(f"<{len(b)}I", *b) or b"\0" * 4,
                 "acc": f32_bits(acc)},
                code_address=info.address, extra_memory=memory,
            )
            got = out["acc"]
            cases += 1
            if got != f32_bits(want):
                failures += 1
                got_f = struct.unpack(f"<{MR * NR}f", got)
                bad = [i for i in range(MR * NR) if struct.pack("<f", got_f[i]) != struct.pack("<f", want[i])]
                print(f"rows {rows} kp {kp}: {len(bad)} lanes differ, first at {bad[0]}: "
                      f"{got_f[bad[0]]!r} != {want[bad[0]]!r}")
    print(f"{info.demangled}: {cases - failures} of {cases} cases bit for bit "
          f"(rows 1-{MR}, depths 0-33 word pairs) on the emulated CPU")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
