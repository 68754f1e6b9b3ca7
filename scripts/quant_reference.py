#!/usr/bin/python3
"""Independent numpy reference for hearth's quant module: writes fixtures/quant/*.bin.

For every stored type, random block bytes (fixed seed) and the float32 values they
dequantize to, computed here from the format description (docs: ggml block layouts and
MLX affine packing) with vectorised numpy rather than hearth's per-element loops. Half
precision scale fields are made finite (random sign, small exponent, occasionally
subnormal) so every expected value is a finite float. Arithmetic is float32 throughout and
in the order the C++ reference uses, so the tests in tests/quant require bit equality.

Block fixture (<name>.bin, little endian):
    b"HQFX", u32 version=1, u32 ggml type id, u32 n_blocks, u32 block_bytes, u32 block_elems,
    u8 blocks[n_blocks * block_bytes], f32 expected[n_blocks * block_elems]
MLX fixture (mlx_b<bits>.bin):
    b"HQMX", u32 version=1, u32 bits, u32 n_cases, then per case
    u32 from_input, u32 group_size, u32 scale_type (hearth DType id), u32 rows, u32 n,
    f32 input[rows * n]            (the values quantized; zeros when from_input == 0)
    u32 packed[rows * n * bits / 32], scale_type scales[rows * n / group_size], biases[same],
    f32 expected[rows * n]         (dequantization of packed/scales/biases)
When from_input is 1, packed/scales/biases are what mlx's affine quantizer gives for input.

Run with /usr/bin/python3 (Debian's numpy): /usr/bin/python3 scripts/quant_reference.py
"""
import os
import struct
import sys

import numpy as np

F32 = np.float32
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "fixtures", "quant")
IQ4_GRID = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=F32)

# name: (ggml type id, elements per block, bytes per block, n_blocks in the fixture)
TYPES = {
    "f32": (0, 1, 4, 512), "f16": (1, 1, 2, 1024), "bf16": (30, 1, 2, 1024),
    "q4_0": (2, 32, 18, 48), "q4_1": (3, 32, 20, 48), "q5_0": (6, 32, 22, 48), "q5_1": (7, 32, 24, 48),
    "q8_0": (8, 32, 34, 48), "q8_1": (9, 32, 36, 48),
    "q2_K": (10, 256, 84, 6), "q3_K": (11, 256, 110, 6), "q4_K": (12, 256, 144, 6), "q5_K": (13, 256, 176, 6),
    "q6_K": (14, 256, 210, 6), "q8_K": (15, 256, 292, 6),
    "iq4_nl": (20, 32, 18, 48), "iq4_xs": (23, 256, 136, 6),
}
# Byte offsets of the f16 fields of each block type.
HALF_FIELDS = {
    "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q8_1": [0, 2],
    "q2_K": [80, 82], "q3_K": [108], "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208],
    "iq4_nl": [0], "iq4_xs": [0],
}
DTYPE_ID = {"f32": 0, "f16": 1, "bf16": 30}


def random_halves(rng, count):
    """Finite f16 bit patterns: exponent 0..20 (0 = subnormal or zero), random sign/mantissa."""
    sign = rng.integers(0, 2, count, dtype=np.uint16) << 15
    exp = rng.integers(0, 21, count, dtype=np.uint16) << 10
    mant = rng.integers(0, 1024, count, dtype=np.uint16)
    return (sign | exp | mant).astype("<u2")


def h(raw, off):
    """The f16 field at byte `off` of every block, as float32."""
    return raw[:, off:off + 2].copy().view("<f2").astype(F32)  # shape (nb, 1)


def nibbles_q4_order(qs):
    """(nb, 16) bytes -> (nb, 32) values: byte j holds element j (low) and j + 16 (high)."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int32)


def fifth_bits(qh):
    """(nb, 4) bytes of a little-endian u32 -> (nb, 32) bits, element j = bit j."""
    return np.unpackbits(qh, axis=1, bitorder="little").astype(np.int32)


def k4_scales_mins(sc):
    """(nb, 12) Q4_K/Q5_K scale bytes -> two (nb, 8) int arrays (6-bit scales, mins)."""
    sc = sc.astype(np.int32)
    s = np.empty((sc.shape[0], 8), np.int32)
    m = np.empty_like(s)
    s[:, :4] = sc[:, 0:4] & 63
    m[:, :4] = sc[:, 4:8] & 63
    s[:, 4:] = (sc[:, 8:12] & 0xF) | ((sc[:, 0:4] >> 6) << 4)
    m[:, 4:] = (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)
    return s, m


def crumbs_256(qs):
    """(nb, 64) bytes of 2-bit values -> (nb, 256): element 128h + 32j + k is bits 2j of qs[32h + k]."""
    q = qs.reshape(-1, 2, 1, 32) >> (2 * np.arange(4, dtype=np.uint8)).reshape(1, 1, 4, 1)
    return (q & 3).reshape(-1, 256).astype(np.int32)


def q3k_scales(sc):
    """(nb, 12) bytes -> (nb, 16) signed scales, decoded through 32-bit words with masks."""
    w = sc.copy().view("<u4").astype(np.uint32)  # (nb, 3)
    a0, a1, t = w[:, 0], w[:, 1], w[:, 2]
    lo, two = np.uint32(0x0F0F0F0F), np.uint32(0x03030303)
    words = np.stack([(a0 & lo) | ((t & two) << 4), (a1 & lo) | (((t >> 2) & two) << 4),
                      ((a0 >> 4) & lo) | (((t >> 4) & two) << 4), ((a1 >> 4) & lo) | (((t >> 6) & two) << 4)],
                     axis=1).astype("<u4")
    return words.view(np.uint8).reshape(-1, 16).astype(np.int32) - 32


def rep(a, n):
    """Repeat each column n times: per-sub-block values -> per-element."""
    return np.repeat(a, n, axis=1)


def dequantize(name, raw):
    nb = raw.shape[0]
    if name == "f32":
        return raw.copy().view("<f4").reshape(-1)
    if name == "f16":
        return raw.copy().view("<f2").astype(F32).reshape(-1)
    if name == "bf16":
        return (raw.copy().view("<u2").astype(np.uint32) << 16).view(F32).reshape(-1)
    if name in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "iq4_nl"):
        d = h(raw, 0)
        if name == "q4_0":
            y = d * (nibbles_q4_order(raw[:, 2:18]) - 8).astype(F32)
        elif name == "q4_1":
            y = d * nibbles_q4_order(raw[:, 4:20]).astype(F32) + h(raw, 2)
        elif name == "q5_0":
            q = nibbles_q4_order(raw[:, 6:22]) | fifth_bits(raw[:, 2:6]) << 4
            y = d * (q - 16).astype(F32)
        elif name == "q5_1":
            q = nibbles_q4_order(raw[:, 8:24]) | fifth_bits(raw[:, 4:8]) << 4
            y = d * q.astype(F32) + h(raw, 2)
        elif name == "q8_0":
            y = d * raw[:, 2:34].copy().view(np.int8).astype(F32)
        elif name == "q8_1":
            y = d * raw[:, 4:36].copy().view(np.int8).astype(F32)
        else:
            y = d * IQ4_GRID[nibbles_q4_order(raw[:, 2:18])]
        return y.reshape(-1)
    if name == "q2_K":
        sc = raw[:, 0:16].astype(np.int32)
        q = crumbs_256(raw[:, 16:80])
        dl = h(raw, 80) * (sc & 0xF).astype(F32)
        ml = h(raw, 82) * (sc >> 4).astype(F32)
        return (rep(dl, 16) * q.astype(F32) - rep(ml, 16)).reshape(-1)
    if name == "q3_K":
        high = np.unpackbits(raw[:, 0:32], axis=1, bitorder="little").reshape(nb, 32, 8)
        # element 128h + 32j + k takes bit 4h + j of hmask[k]
        high = high.transpose(0, 2, 1).reshape(nb, 256).astype(np.int32)
        q = crumbs_256(raw[:, 32:96]) - 4 * (1 - high)
        dl = h(raw, 108) * q3k_scales(raw[:, 96:108]).astype(F32)
        return (rep(dl, 16) * q.astype(F32)).reshape(-1)
    if name in ("q4_K", "q5_K"):
        s, m = k4_scales_mins(raw[:, 4:16])
        qs = raw[:, 48:176] if name == "q5_K" else raw[:, 16:144]
        chunks = qs.reshape(nb, 4, 1, 32)
        q = np.concatenate([chunks & 0xF, chunks >> 4], axis=2).reshape(nb, 256).astype(np.int32)
        if name == "q5_K":
            bits = np.unpackbits(raw[:, 16:48], axis=1, bitorder="little").reshape(nb, 32, 8)
            q = q | bits.transpose(0, 2, 1).reshape(nb, 256).astype(np.int32) << 4
        dl = h(raw, 0) * s.astype(F32)
        ml = h(raw, 2) * m.astype(F32)
        return (rep(dl, 32) * q.astype(F32) - rep(ml, 32)).reshape(-1)
    if name == "q6_K":
        ql = raw[:, 0:128].reshape(nb, 2, 2, 32).astype(np.int32)  # [half, +32 byte offset, l]
        qh = raw[:, 128:192].reshape(nb, 2, 1, 32).astype(np.int32)
        low = np.stack([ql[:, :, 0] & 0xF, ql[:, :, 1] & 0xF, ql[:, :, 0] >> 4, ql[:, :, 1] >> 4], axis=2)
        high = (qh >> (2 * np.arange(4).reshape(1, 1, 4, 1))) & 3
        q = (low | high << 4).reshape(nb, 256) - 32
        dl = h(raw, 208) * raw[:, 192:208].copy().view(np.int8).astype(F32)
        return (rep(dl, 16) * q.astype(F32)).reshape(-1)
    if name == "q8_K":
        d = raw[:, 0:4].copy().view("<f4")
        return (d * raw[:, 4:260].copy().view(np.int8).astype(F32)).reshape(-1)
    if name == "iq4_xs":
        sh = raw[:, 2:4].copy().view("<u2").astype(np.int32)  # (nb, 1)
        sl = raw[:, 4:8].astype(np.int32)
        b = np.arange(8)
        ls = ((sl[:, b // 2] >> (4 * (b % 2))) & 0xF) | (((sh >> (2 * b)) & 3) << 4)
        dl = h(raw, 0) * (ls - 32).astype(F32)
        q = np.concatenate([nibbles_q4_order(raw[:, 8 + 16 * i:24 + 16 * i]) for i in range(8)], axis=1)
        return (rep(dl, 32) * IQ4_GRID[q]).reshape(-1)
    raise ValueError(name)


def random_blocks(rng, name):
    _, elems, size, nb = TYPES[name]
    raw = rng.integers(0, 256, (nb, size), dtype=np.uint8)
    if name == "f32":
        raw = rng.standard_normal(nb).astype("<f4").view(np.uint8).reshape(nb, 4)
    elif name == "f16":
        raw = random_halves(rng, nb).view(np.uint8).reshape(nb, 2)
    elif name == "bf16":
        exp = rng.integers(100, 150, nb, dtype=np.uint16) << 7  # finite, wide range
        bits = (rng.integers(0, 2, nb, dtype=np.uint16) << 15) | exp | rng.integers(0, 128, nb, dtype=np.uint16)
        raw = bits.astype("<u2").view(np.uint8).reshape(nb, 2)
    elif name == "q8_K":
        raw[:, 0:4] = (rng.standard_normal((nb, 1)) * 0.01).astype("<f4").view(np.uint8)
    for off in HALF_FIELDS.get(name, []):
        raw[:, off:off + 2] = random_halves(rng, nb).reshape(nb, 1).view(np.uint8)
    return raw


def write_block_fixture(rng, name):
    type_id, elems, size, nb = TYPES[name]
    raw = random_blocks(rng, name)
    y = dequantize(name, raw).astype("<f4")
    assert y.shape == (nb * elems,) and np.all(np.isfinite(y)), name
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"HQFX" + struct.pack("<5I", 1, type_id, nb, size, elems))
        f.write(raw.tobytes())
        f.write(y.tobytes())


# ---- MLX affine ---------------------------------------------------------------------

def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (inputs are finite)."""
    u = x.astype(F32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def store(x, scale_type):
    """float32 values -> (bytes of scale_type, the float32 values those bytes hold)."""
    if scale_type == "f16":
        s = x.astype("<f2")
        return s, s.astype(F32)
    if scale_type == "bf16":
        b = to_bf16_bits(x)
        return b, (b.astype(np.uint32) << 16).view(F32)
    return x.astype("<f4"), x.astype(F32)


def pack_stream(q, bits):
    """(rows, n) ints -> (rows, n * bits / 32) uint32: one little-endian bit stream per row."""
    stream = ((q[..., None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(q.shape[0], -1)
    return np.packbits(stream, axis=1, bitorder="little").view("<u4")


def mlx_quantize(w, bits, gs):
    """mlx.core.quantize (affine): per group scale/bias and levels, all float32."""
    n_bins = F32((1 << bits) - 1)
    g = w.reshape(w.shape[0], -1, gs)
    w_min, w_max = g.min(axis=2), g.max(axis=2)
    mask = np.abs(w_min) > np.abs(w_max)
    scale = np.maximum((w_max - w_min) / n_bins, F32(1e-7))
    scale = np.where(mask, scale, -scale)
    edge = np.where(mask, w_min, w_max)
    q0 = np.rint(edge / scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(q0 != 0, edge / q0, scale).astype(F32)
    bias = np.where(q0 != 0, edge, F32(0)).astype(F32)
    q = np.clip(np.rint((g - bias[..., None]) / scale[..., None]), 0, n_bins)
    return q.astype(np.int64).reshape(w.shape), scale, bias


def write_mlx_fixture(rng, bits):
    cases = []
    for gs, scale_type in [(32, "f16"), (64, "bf16"), (128, "f16"), (32, "bf16"), (64, "f32")]:
        rows, n = 2, 3 * gs  # three groups per row
        w = rng.standard_normal((rows, n)).astype(F32)
        w[0, :gs] = np.abs(w[0, :gs])  # a group with no negative values
        w[1, gs:2 * gs] = F32(0.75)    # a constant group
        q, scale, bias = mlx_quantize(w, bits, gs)
        cases.append((1, gs, scale_type, w, q, scale, bias))
    # Arbitrary levels and scales, independent of the quantizer (negative scales included).
    for gs, scale_type in [(32, "f16"), (128, "bf16")]:
        rows, n = 2, 3 * gs
        q = rng.integers(0, 1 << bits, (rows, n))
        scale = rng.standard_normal((rows, 3)).astype(F32) * F32(0.1)
        bias = rng.standard_normal((rows, 3)).astype(F32)
        cases.append((0, gs, scale_type, np.zeros((rows, n), F32), q, scale, bias))
    with open(os.path.join(OUT, "mlx_b%d.bin" % bits), "wb") as f:
        f.write(b"HQMX" + struct.pack("<3I", 1, bits, len(cases)))
        for from_input, gs, scale_type, w, q, scale, bias in cases:
            rows, n = w.shape
            s_bytes, s32 = store(scale, scale_type)
            b_bytes, b32 = store(bias, scale_type)
            expected = np.repeat(s32, gs, axis=1) * q.astype(F32) + np.repeat(b32, gs, axis=1)
            f.write(struct.pack("<5I", from_input, gs, DTYPE_ID[scale_type], rows, n))
            f.write(w.astype("<f4").tobytes())
            f.write(pack_stream(q, bits).tobytes())
            f.write(s_bytes.tobytes())
            f.write(b_bytes.tobytes())
            f.write(expected.astype("<f4").tobytes())


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    for name in TYPES:
        write_block_fixture(rng, name)
    for bits in (2, 3, 4, 5, 6, 8):
        write_mlx_fixture(rng, bits)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %d fixtures, %d bytes, to %s" % (len(os.listdir(OUT)), total, os.path.normpath(OUT)))
    if total >= 1 << 20:
        sys.exit("fixtures exceed 1 MB")


if __name__ == "__main__":
    main()
