"""CPU facts from /proc/cpuinfo, and a llama.cpp build's features checked against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsearch.hardware import CpuInfo, cpu_info, llama_features, llama_isa_problems

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx f16c fma avx2 bmi2 avx512f avx512vbmi avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16 pni ssse3
"""
OLD_AMD = """processor\t: 0
model name\t: AMD Opteron(tm) Processor 6272
flags\t\t: fpu sse4_2 avx fma pni ssse3
"""
# llama_print_system_info() of a -march=native build on a Sapphire Rapids VM (issue 23)
NATIVE_AMX = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
              "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
              "REPACK = 1 | ")
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 |"


@pytest.fixture()
def xeon(tmp_path: Path) -> CpuInfo:
    (tmp_path / "cpuinfo").write_text(XEON)
    return cpu_info(tmp_path / "cpuinfo")


def test_cpuinfo_gives_the_model_and_extensions_in_order(xeon, monkeypatch):
    assert xeon.model == "Intel(R) Xeon(R) Platinum 8480+"
    if xeon.arch == "x86_64":
        assert xeon.extensions[:5] == ["sse4_2", "avx", "f16c", "fma", "avx2"]
        assert xeon.extensions[-3:] == ["amx_tile", "amx_int8", "amx_bf16"]
    assert xeon.has("amx_int8") and not xeon.has("avx_vnni") and xeon.cores >= 1


def test_without_cpuinfo_the_model_still_has_a_name(tmp_path):
    cpu = cpu_info(tmp_path / "missing")
    assert cpu.model and not cpu.flags


def test_llama_features_parse_the_system_info_line():
    features = llama_features(NATIVE_AMX)
    assert features["AMX_INT8"] and features["AVX512"] and features["OPENMP"]
    assert len(features) == 15


def test_an_amx_build_is_flagged_and_a_portable_one_is_not(xeon):
    assert llama_isa_problems(llama_features(NATIVE_AMX), xeon) == [
        "built with llama.cpp's AMX kernels, which crash on some machines that offer AMX"]
    assert llama_isa_problems(llama_features(PORTABLE), xeon) == []


def test_a_build_for_instructions_the_cpu_lacks_names_them(tmp_path):
    (tmp_path / "cpuinfo").write_text(OLD_AMD)
    old = cpu_info(tmp_path / "cpuinfo")
    assert llama_isa_problems(llama_features(PORTABLE), old) == [
        "built for AVX2, F16C, BMI2, which this CPU does not offer"]
