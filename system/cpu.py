"""What CPU this is: its model name and the vector instruction sets that decide XLA's kernels.

Speed figures depend on the ISA (AVX2, AVX-512, AMX) more than on anything else about a CPU, so
every benchmark table names both. Read from ``/proc/cpuinfo`` on Linux; elsewhere the platform
module's name and no ISA list.
"""
from __future__ import annotations

import functools
import os
import platform

# the flags worth naming, widest first; AMX and AVX-512 BF16 are the bfloat16 matmul units
ISA_FLAGS = (("amx_tile", "AMX"), ("amx_bf16", "AMX-BF16"), ("avx512f", "AVX-512"),
             ("avx512_bf16", "AVX-512-BF16"), ("avx512_vnni", "AVX-512-VNNI"), ("avx2", "AVX2"),
             ("fma", "FMA"), ("asimd", "NEON"), ("sve", "SVE"))


@functools.lru_cache(maxsize=None)
def info() -> dict:
    """{'model': name, 'vendor', 'family', 'isa': [names], 'cores': count usable by this process}."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "vendor": fields.get("vendor_id", ""), "family": fields.get("cpu family", ""),
            "isa": [name for flag, name in ISA_FLAGS if flag in flags], "cores": cores}


def describe() -> str:
    """One line: 'AMD EPYC (family 25), AVX-512, AVX-512-BF16, AVX2, FMA; 2 cores'."""
    i = info()
    family = f" (family {i['family']})" if i["family"] else ""
    isa = ", ".join(i["isa"]) or "ISA unknown"
    return f"{i['model']}{family}, {isa}; {i['cores']} cores"
