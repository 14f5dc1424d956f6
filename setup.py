"""Which packages a build of Chat Wizard ships (everything else about the project is in pyproject.toml).

By default the production wheel, the one the image installs: the service and its operator commands only.
CHATWIZARD_BUILD=development (set by `make deps` for the repository's own venv) adds what only development
runs: the local estate (`chatwizard.estate`: `chatwizard up` and the sqlmap-driving security audit) and the
load-test tools (`fakellm`, `loadrun`). The production CLI answers the estate's commands with a clear
refusal (chatwizard.cli.development_only).
"""

import os

from setuptools import find_packages, setup

DEVELOPMENT = os.environ.get("CHATWIZARD_BUILD") == "development"
DEVELOPMENT_ONLY = ["chatwizard.estate", "chatwizard.estate.*"]

packages = find_packages(
    "app", include=["chatwizard", "chatwizard.*"], exclude=[] if DEVELOPMENT else DEVELOPMENT_ONLY
)
package_dir = {"": "app"}
scripts = ["chatwizard = chatwizard.cli:main"]
if DEVELOPMENT:
    tools = find_packages("loadtest", include=["fakellm", "fakellm.*", "loadrun", "loadrun.*"])
    packages += tools
    package_dir |= {package: "loadtest/" + package.replace(".", "/") for package in tools}
    scripts.append("fakellm = fakellm.server:main")

setup(packages=packages, package_dir=package_dir, entry_points={"console_scripts": scripts})
