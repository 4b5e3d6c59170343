#!/usr/bin/env bash
# `make cgroup-v2`: resmagic's cgroup probe, guard and container row against a real cgroup v2,
# in a small VM (qemu with software emulation: no KVM needed), on two Debian kernels:
# 6.1 (bookworm; the v2 peak reset is refused) and 6.12 (bookworm-backports; it is allowed).
#
# The guest is a busybox initramfs that mounts this machine's root read-only over 9p and runs
# tests/vm/check_cgroup_v2.py with this checkout's Python in a chroot of it. Needs
# qemu-system-x86 and busybox-static (Debian packages); the kernels are fetched once with
# `apt-get download` into $VM_DIR (default .vm/, ignored by git) and unpacked, never installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VM_DIR=${VM_DIR:-$ROOT/.vm}
PY=${PY:-$ROOT/.venv/bin/python}
mkdir -p "$VM_DIR"

for tool in qemu-system-x86_64 busybox; do
    command -v "$tool" >/dev/null || {
        echo "cgroup-v2: $tool is missing: apt-get install qemu-system-x86 busybox-static" >&2
        exit 2
    }
done

# A private apt configuration for bookworm-backports: the machine's sources stay as they are.
BPO=(-o "Dir::Etc::SourceList=$VM_DIR/bpo.list" -o Dir::Etc::SourceParts=-
     -o "Dir::State::Lists=$VM_DIR/lists" -o "Dir::Cache=$VM_DIR/cache")

fetch() {  # fetch NAME [APT OPTIONS...]: the linux-image package linux-image-amd64 depends on
    local name=$1; shift
    [ -d "$VM_DIR/$name" ] && return
    local pkg
    pkg=$(apt-cache "$@" depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    (cd "$VM_DIR" && apt-get "$@" download "$pkg" >/dev/null 2>&1)
    dpkg-deb -x "$VM_DIR"/"$pkg"_*.deb "$VM_DIR/$name"
    rm -f "$VM_DIR"/"$pkg"_*.deb
}

fetch k61
if [ ! -d "$VM_DIR/k612" ]; then
    mkdir -p "$VM_DIR/lists/partial" "$VM_DIR/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian bookworm-backports main" > "$VM_DIR/bpo.list"
    apt-get "${BPO[@]}" update >/dev/null
    fetch k612 "${BPO[@]}"
fi

# Modules in load order: 6.1 has virtio as modules, 6.12 has it built in (and xz modules).
MODS_61="virtio/virtio_ring virtio/virtio virtio/virtio_pci_legacy_dev
virtio/virtio_pci_modern_dev virtio/virtio_pci netfs/netfs fscache/fscache 9p/9pnet
9p/9pnet_virtio 9p/9p"
MODS_612="netfs/netfs 9p/9pnet 9p/9pnet_virtio 9p/9p"

initramfs() {  # initramfs KERNEL_DIR "MODULES": writes KERNEL_DIR/initrd.gz
    local kdir=$1 mods=$2 tree
    tree=$(mktemp -d)
    mkdir -p "$tree"/{bin,proc,sys,dev,mnt,lib}
    cp "$(command -v busybox)" "$tree/bin/busybox"
    for mod in $mods; do
        local found
        found=$(find "$kdir/lib/modules" -name "$(basename "$mod").ko*" -path "*${mod%/*}*" | head -1)
        case $found in
            *.xz) xz -dc "$found" > "$tree/lib/$(basename "$mod").ko" ;;
            *) cp "$found" "$tree/lib/" ;;
        esac
        echo "$(basename "$mod").ko" >> "$tree/lib/order"
    done
    cat > "$tree/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in \$(cat /lib/order); do insmod /lib/\$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /mnt
mount -t proc proc /mnt/proc; mount -t sysfs sys /mnt/sys; mount -t devtmpfs dev /mnt/dev
mount -t tmpfs tmp /mnt/tmp
# The guest's /tmp is a fresh tmpfs: a checkout under the host's /tmp (a CI runner's, say)
# comes in as an export of its own.
if [ ! -e /mnt$ROOT/tests/vm/check_cgroup_v2.py ]; then
    mkdir -p /mnt$ROOT && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 checkout /mnt$ROOT
fi
mount -t cgroup2 none /mnt/sys/fs/cgroup
chroot /mnt /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1 \
    $PY $ROOT/tests/vm/check_cgroup_v2.py $ROOT
poweroff -f
INIT
    chmod +x "$tree/init"
    (cd "$tree" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$kdir/initrd.gz"
    rm -rf "$tree"
}

boot() {  # boot KERNEL_DIR: the guest's console, in KERNEL_DIR/console.log
    local kdir=$1
    timeout 300 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
        -kernel "$(ls "$kdir"/boot/vmlinuz-*)" -initrd "$kdir/initrd.gz" -net none \
        -append "console=ttyS0 panic=-1 quiet" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on \
        -virtfs "local,path=$ROOT,mount_tag=checkout,security_model=none,readonly=on" \
        > "$kdir/console.log" 2>&1 < /dev/null || true
}

status=0
for k in k61 k612; do
    mods=$MODS_61; [ $k = k612 ] && mods=$MODS_612
    initramfs "$VM_DIR/$k" "$mods"
    start=$(date +%s)
    boot "$VM_DIR/$k"
    line=$(grep -a "^CGROUP-V2 " "$VM_DIR/$k/console.log" | tail -1 | tr -d '\r' || true)
    echo "${line:-CGROUP-V2 FAIL $k: no result (see $VM_DIR/$k/console.log)} ($(( $(date +%s) - start )) s)"
    case $line in "CGROUP-V2 OK"*) ;; *) status=1; grep -a -v "^\[" "$VM_DIR/$k/console.log" | tail -30 ;; esac
done
exit $status
