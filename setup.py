"""Build the C atoms kernel into the package when a C compiler is present.

The kernel is a plain shared library that ``tilefan.compute.ckernel`` loads with ctypes
(no Python API, no libc symbol), so it is built with the same flags as
``stepfunctions/build_kernel.sh`` and named ``_atoms_kernel.so`` without an ABI tag. With
no compiler the install still succeeds: tilefan then runs its NumPy kernel and says so,
once, in one line, with the way to get the fast one.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNEL = "tilefan.compute._atoms_kernel"


class OptionalKernel(build_ext):
    """build_ext that names the kernel for ctypes and never fails the install."""

    def get_ext_filename(self, fullname: str) -> str:
        # Called with the dotted name or its last part, depending on the build mode.
        if fullname.rpartition(".")[2] == KERNEL.rpartition(".")[2]:
            return fullname.replace(".", "/") + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # not a Python module: no PyInit_ symbol to export

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # no compiler, or one that rejects the flags
            print(f"tilefan: the C atoms kernel was not built ({exc}); the NumPy kernel will be used",
                  file=sys.stderr)

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # setuptools found no compiler at all
            print(f"tilefan: the C atoms kernel was not built ({exc}); the NumPy kernel will be used",
                  file=sys.stderr)


setup(
    ext_modules=[
        Extension(
            KERNEL,
            sources=["tilefan/compute/atoms_kernel.c"],
            # -ffast-math only at compile time: linked with it, gcc adds crtfastmath.o, which
            # changes the floating-point mode of the whole Python process.
            extra_compile_args=["-O3", "-ffast-math", "-std=c11"],
            extra_link_args=["-nostdlib", "-Wl,-z,noexecstack", "-lgcc"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalKernel},
)
