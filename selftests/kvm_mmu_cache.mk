# SPDX-License-Identifier: GPL-2.0
#
# Read after tools/testing/selftests/kvm/Makefile (make -f Makefile -f this):
# builds the project's selftests with exactly the flags and libkvm objects of
# KVM's own selftests. KMC_SELFTESTS is the list of test names; each is built
# from $(KMC_SELFTEST_DIR)/<name>.c.

KMC_PROGS := $(patsubst %,$(OUTPUT)/%,$(KMC_SELFTESTS))

$(KMC_PROGS): $(OUTPUT)/%: $(KMC_SELFTEST_DIR)/%.c $(wildcard $(KMC_SELFTEST_DIR)/*.h) $(LIBKVM_OBJS)
	$(CC) $(CFLAGS) -I$(CURDIR)/include -I$(CURDIR)/include/$(ARCH) \
		$(CPPFLAGS) $(LDFLAGS) $(TARGET_ARCH) $< $(LIBKVM_OBJS) $(LDLIBS) -o $@

kmc-selftests: $(KMC_PROGS)
.PHONY: kmc-selftests
