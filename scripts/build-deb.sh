#!/usr/bin/env bash
# Builds target/debian/edged_<version>_<arch>.deb from the workspace with
# dpkg-deb: binaries, unit and its ExecStop script, sysusers (group edged),
# default config (conffile), man pages, completions, docs. Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/.."
meta=$(cargo metadata --locked --no-deps --format-version 1)
version=$(echo "$meta" | python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="edge-daemon"))')
target=$(echo "$meta" | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
arch=$(dpkg --print-architecture)
cargo build -q --locked --release -p edge-daemon --bins
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cargo run -q --locked --release -p edge-daemon --example gen-assets -- "$root/assets" >/dev/null

install -D -m 0755 "$target/release/edged" "$root/pkg/usr/sbin/edged"
install -D -m 0755 "$target/release/edgectl" "$root/pkg/usr/bin/edgectl"
install -D -m 0644 systemd/edged.service "$root/pkg/lib/systemd/system/edged.service"
install -D -m 0755 systemd/edged-stop "$root/pkg/usr/lib/edged/edged-stop"
install -D -m 0644 packaging/debian/edged.sysusers "$root/pkg/usr/lib/sysusers.d/edged.conf"
install -D -m 0644 packaging/debian/edged.yaml "$root/pkg/etc/edged/edged.yaml"
for page in edged edgectl; do
  install -D -m 0644 "$root/assets/man/$page.8" "$root/pkg/usr/share/man/man8/$page.8"
  gzip -9n "$root/pkg/usr/share/man/man8/$page.8"
  install -D -m 0644 "$root/assets/completions/$page.bash" "$root/pkg/usr/share/bash-completion/completions/$page"
  install -D -m 0644 "$root/assets/completions/_$page" "$root/pkg/usr/share/zsh/vendor-completions/_$page"
  install -D -m 0644 "$root/assets/completions/$page.fish" "$root/pkg/usr/share/fish/vendor_completions.d/$page.fish"
done
install -D -m 0644 README.md "$root/pkg/usr/share/doc/edged/README.md"
install -D -m 0644 packaging/debian/copyright "$root/pkg/usr/share/doc/edged/copyright"
install -D -m 0644 packaging/grafana/edged-dashboard.json "$root/pkg/usr/share/doc/edged/grafana/edged-dashboard.json"
for f in config/examples/*.yaml; do
  install -D -m 0644 "$f" "$root/pkg/usr/share/doc/edged/examples/$(basename "$f")"
done
if [ -d docs ]; then
  for f in docs/*.md; do install -D -m 0644 "$f" "$root/pkg/usr/share/doc/edged/$(basename "$f")"; done
fi

install -d "$root/pkg/DEBIAN"
sed -e "s/@VERSION@/$version/; s/@ARCH@/$arch/" packaging/debian/control.in > "$root/pkg/DEBIAN/control"
echo "Installed-Size: $(du -sk "$root/pkg" | cut -f1)" >> "$root/pkg/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/pkg/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/pkg/DEBIAN/$s"; done

mkdir -p "$target/debian"
out="$target/debian/edged_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root/pkg" "$out" >/dev/null
echo "$out"
