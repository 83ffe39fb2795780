# chatbench, the load generator (bench/chatbench, man/chatbench.1). Its
# modules but main.c go into a library of their own, so the unit suites of
# the pure ones (check_hist, check_benchmsg) link just what they test.
# CLIENT_LIB comes from client.mk, included after this file; its name is
# fixed here so the prerequisites below are not read empty.
CLIENT_LIB   ?= $(BUILD)/libchatc.a

CHATBENCH_SRC := $(wildcard bench/chatbench/*.c)
CHATBENCH_OBJ := $(CHATBENCH_SRC:%.c=$(BUILD)/%.o)
CHATBENCH_LIB := $(BUILD)/libchatbench.a

PROGS += $(BUILD)/chatbench

$(CHATBENCH_LIB): $(filter-out $(BUILD)/bench/chatbench/main.o,$(CHATBENCH_OBJ))
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/chatbench: $(BUILD)/bench/chatbench/main.o $(CHATBENCH_LIB) $(CLIENT_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/check_hist $(BUILD)/tests/check_benchmsg: $(BUILD)/tests/%: tests/unit/%.c $(CHATBENCH_LIB) $(CLIENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $< $(CHATBENCH_LIB) $(CLIENT_LIB) $(LIB) $(PKG_LIBS) $(CHECK_LIBS)


# `make install` installs chatbench too (its manual page goes with man/*).
.PHONY: install-chatbench
install: install-chatbench
install-chatbench: $(BUILD)/chatbench
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/chatbench $(DESTDIR)$(BINDIR)/chatbench

-include $(CHATBENCH_OBJ:.o=.d)
