#!/bin/sh
# Stage 1 of the cfvm guest, /init in the initramfs that vm.py builds.
# Loads the virtio/9p/overlay modules, mounts the host's / (shared read-only over
# virtio-9p) under a tmpfs overlay, and hands over to busybox init on that root,
# which runs stage 2 (tests/vm/guest_boot.sh, read from the host tree).
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

log() { echo "cfvm-init: $*" > /dev/console; }
die() {
    log "FAILED: $*"
    # -no-reboot on the qemu side turns this into qemu exiting, which vm.py notices.
    reboot -f
}

log "stage 1 at $(cut -d' ' -f1 /proc/uptime)s"
while read -r module; do
    insmod "/modules/$module.ko" || die "insmod $module"
done < /modules/order
log "modules loaded at $(cut -d' ' -f1 /proc/uptime)s"

mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower \
    || die "mount of the 9p host root"
mount -t tmpfs -o mode=0755 tmpfs /upper || die "tmpfs for the overlay"
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot \
    || die "overlay root"
log "overlay root mounted at $(cut -d' ' -f1 /proc/uptime)s"

# busybox init on the new root: run stage 2 once, reap orphans, no login prompts.
repo=''
read -r cmdline < /proc/cmdline
for word in $cmdline; do
    case "$word" in cfvm.repo=*) repo="${word#cfvm.repo=}" ;; esac
done
[ -n "$repo" ] || die "cfvm.repo= missing on the kernel command line"
cat > /newroot/etc/inittab <<EOF
::sysinit:/bin/busybox sh $repo/tests/vm/guest_boot.sh
::ctrlaltdel:/bin/busybox poweroff -f
EOF

# Move, not remount, so the new root never shows the host's /proc through 9p: busybox
# re-executes itself via /proc/self/exe, which there would be the host's qemu binary.
for fs in /proc /sys /dev; do
    mount --move "$fs" "/newroot$fs" || die "mount --move $fs"
done
log "switch_root"
exec switch_root /newroot /bin/busybox init
