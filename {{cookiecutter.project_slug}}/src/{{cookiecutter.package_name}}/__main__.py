"""``python -m {{ cookiecutter.package_name }}``: the command line used by notebooks and local runs."""

import sys

from .cli import main

sys.exit(main())
