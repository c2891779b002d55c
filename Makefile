# hyper: build the guest (kernel + initrd), install, run services, test.
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib/hyper
VENV ?= /opt/hyper/venv
BUILD := build

.PHONY: all deps kernel initrd erofs-utils install services daemon demo setup test lint compat density bench clean

all: kernel initrd

deps:
	VENV=$(VENV) tools/install-deps.sh

# kernel/build.sh caches the build outside the repo, keyed by its inputs.
kernel:
	kernel/build.sh $(BUILD)/vmlinux

initrd:
	$(MAKE) -C hyperstart
	hyperstart/mkinitrd.sh $(BUILD)/initrd.img

# mkfs.erofs with --tar (erofs-utils 1.8; Debian 12 has 1.5), cached like the kernel.
erofs-utils:
	tools/build-erofs-utils.sh $(BUILD)/mkfs.erofs

install: kernel initrd erofs-utils
	install -D -m 0644 $(BUILD)/vmlinux $(LIBDIR)/vmlinux
	install -D -m 0755 $(BUILD)/mkfs.erofs $(LIBDIR)/bin/mkfs.erofs
	install -D -m 0644 $(BUILD)/initrd.img $(LIBDIR)/initrd.img

services:
	tools/start-libvirt.sh

daemon: services
	tools/start-hyperd.sh

# The main job, offline: the built-in busybox image in a VM.
demo: daemon
	VENV=$(VENV) tools/import-builtin.sh
	hyper run --rm busybox echo hello

# One command on a fresh machine: dependencies, guest build, install, services, demo.
setup: deps install demo

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/python -m pytest -q

# docker-py's own integration suite against a throwaway hyperd (boots many VMs; ~30 min).
SUITE ?= ../shared/suites/docker-py
compat: all
	VENV=$(VENV) tools/compat.sh $(SUITE)

# N containers at once: start time, PSS with KSM off and on, rm -f time (~5 min; 50 VMs),
# with VMs booted, with VMs cloned from a template, then from a pool of 50 clones.
density: all
	$(VENV)/bin/python bench/density.py -n 50
	$(VENV)/bin/python bench/density.py -n 50 --factory template
	$(VENV)/bin/python bench/density.py -n 50 --factory template,cache:50

# Every benchmark, one after another (each prints its figures beside its same-run baseline),
# then one table of the headline figures, baselines, ratios and targets (bench/summary.py).
bench: all
	rm -f $(BUILD)/bench-results.jsonl; status=0; \
	for b in boot pull push run volumes logs net density "density --factory template" \
		"density --factory template,cache:50"; do \
		echo "== bench/$$b"; set -- $$b; name=$$1; shift; \
		HYPER_BENCH_RESULTS=$(abspath $(BUILD))/bench-results.jsonl \
			$(VENV)/bin/python bench/$$name.py "$$@" || { echo "bench/$$b failed"; status=1; }; \
	done; \
	echo "== summary"; $(VENV)/bin/python bench/summary.py $(BUILD)/bench-results.jsonl; \
	exit $$status

clean:
	rm -rf $(BUILD)
	$(MAKE) -C hyperstart clean
