"""`python -m modelops_quantizer [serve | install-tools]`.

serve          HTTP (/healthz, /readyz, /metrics, /v1/worker) and the job consumer in one process (the default)
install-tools  unpack llama.cpp's converters of the installed llama-cpp-python (`make install` and the image run it)
"""

from __future__ import annotations

import argparse

from .toolchain import install_converters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modelops_quantizer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve")
    commands.add_parser("install-tools")
    args = parser.parse_args(argv)
    if args.command == "install-tools":
        print(f"llama.cpp converters in {install_converters()}")
        return 0
    # Imported here: torch, PEFT and transformers take seconds, and `install-tools` needs none of them.
    from modelops_shared.service import serve

    from .app import create_app
    from .settings import QuantizerSettings

    settings = QuantizerSettings()
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
