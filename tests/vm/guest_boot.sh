#!/bin/sh
# Stage 2 of the cfvm guest, run once by busybox init on the overlay root.
# Read from the host tree over 9p, so editing it needs no initramfs rebuild.
#
# Mounts the pseudo filesystems and ONLY cgroup v2, starts the network and sshd,
# then builds the runc lab (tests/lab/lab.py create, v2 mode). Progress goes to
# the serial console; the outcome goes to /run/cfvm/status ("ready" or
# "failed: ..."), which vm.py polls over SSH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# /proc, /sys and /dev are the guest's own, moved here by stage 1.
name='' lab='' repo='' keys='' pause=''
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    case "$word" in
        cfvm.name=*) name="${word#*=}" ;;
        cfvm.lab=*) lab="${word#*=}" ;;
        cfvm.repo=*) repo="${word#*=}" ;;
        cfvm.keys=*) keys="${word#*=}" ;;
        cfvm.pause=*) pause="${word#*=}" ;;
    esac
done

mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
# No tmpfs over /tmp: the repository (keys, lab, collection) may live under the host's /tmp, and
# the overlay's tmpfs upper layer already keeps the guest's writes off the host.
mkdir -p /run/cfvm /run/sshd /run/cfvm-lab/build

uptime_s() { cut -d' ' -f1 /proc/uptime; }
log() { echo "cfvm-boot: [$(uptime_s)s] $*"; echo "$(uptime_s) $*" >> /run/cfvm/boot.log; }
fail() { log "FAILED: $*"; echo "failed: $*" > /run/cfvm/status; exit 0; }
echo booting > /run/cfvm/status
log "stage 2 for $name, lab $lab"

# cgroup v2 only: the kernel runs with cgroup_no_v1=all and nothing else mounts a hierarchy.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
echo "+memory +cpu +pids +io" > /sys/fs/cgroup/cgroup.subtree_control \
    || fail "enable controllers in the root cgroup.subtree_control"
log "cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

hostname "$name"
ip link set lo up
ip link set eth0 up || fail "no eth0"
# qemu user networking: the guest is 10.0.2.15, the (restricted) gateway 10.0.2.2.
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# The host's root dotfiles start pyenv, seconds per SSH command under TCG; the guest
# (an overlay, so the host is untouched) logs in without them.
for dotfile in .bashrc .profile .bash_profile .bash_login; do
    [ -e "/root/$dotfile" ] && echo "# cfvm guest: empty on purpose" > "/root/$dotfile"
done

# Python compiles the modules Ansible sends (zips) on every run; the guest keeps their bytecode
# (tests/lab/bytecode_site/zip_bytecode_cache.py, loaded by a .pth file in the overlay).
site=$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])') \
    && mkdir -p "$site" && cp "$repo/tests/lab/bytecode_site/zip_bytecode_cache.py" "$site/" \
    && echo "import zip_bytecode_cache" > "$site/cflab-bytecode-cache.pth" \
    || fail "install the bytecode cache"

# Keys come from vm.py's build dir on the host; copies on tmpfs get strict modes.
install -m 0600 "$keys/ssh_host_ed25519_key" /run/cfvm/ssh_host_ed25519_key || fail "host key"
install -m 0600 "$keys/id_ed25519.pub" /run/cfvm/authorized_keys || fail "authorized key"
/usr/sbin/sshd -f /dev/null \
    -o ListenAddress=0.0.0.0:22 \
    -o HostKey=/run/cfvm/ssh_host_ed25519_key \
    -o AuthorizedKeysFile=/run/cfvm/authorized_keys \
    -o PidFile=/run/cfvm/sshd.pid \
    -o PermitRootLogin=prohibit-password \
    -o PasswordAuthentication=no \
    -o KbdInteractiveAuthentication=no \
    -o UsePAM=no -o UseDNS=no -o StrictModes=no -o PrintMotd=no \
    -o MaxStartups=64 -o MaxSessions=64 \
    -o "Subsystem sftp /usr/lib/openssh/sftp-server" \
    || fail "sshd did not start"
log "sshd started"

# The pause binary is compiled on the host (vm.py); gcc under TCG would take long.
echo lab > /run/cfvm/status
[ -n "$pause" ] && cp "$pause" /run/cfvm-lab/build/
if /usr/bin/python3 "$repo/tests/lab/lab.py" create --prefix "$lab" --node-name "$name" \
        --state-dir /run/cfvm-lab > /run/cfvm/lab-create.log 2>&1; then
    log "lab $lab created"
    echo ready > /run/cfvm/status
else
    log "lab create output:"
    cat /run/cfvm/lab-create.log
    fail "lab.py create"
fi
