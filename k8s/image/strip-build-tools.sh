#!/bin/sh
# The bentofiles' docker.setup_script: BentoML runs it after the Python packages are installed.
# BentoML's generated Dockerfile installs a compiler, git and gnupg (for requirements that
# build from source) and the GPU image adds Ubuntu's pip (to install uv); every requirement
# of this service ships wheels, so the runtime image keeps none of them.
set -eu
installed=""
for package in build-essential git gnupg2 python3-pip; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        installed="$installed $package"
    fi
done
if [ -n "$installed" ]; then
    # shellcheck disable=SC2086 # one word per package
    apt-get purge -y --auto-remove $installed
fi
rm -rf /var/lib/apt/lists/* /root/.cache
