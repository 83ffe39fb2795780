# The client library (client/*.c but chatcli.c and cli_*.c: the WebSocket
# codec, the HTTP client and the blocking connection) that chatcli and
# chatbench share, and chatcli, the terminal client. CLIENT_LIB is what
# other fragments link with.
CLIENT_SRC  := $(filter-out client/chatcli.c client/cli_%.c,$(wildcard client/*.c))
CLIENT_OBJ  := $(CLIENT_SRC:%.c=$(BUILD)/%.o)
CLIENT_LIB  := $(BUILD)/libchatc.a
CHATCLI_SRC := client/chatcli.c $(wildcard client/cli_*.c)
CHATCLI_OBJ := $(CHATCLI_SRC:%.c=$(BUILD)/%.o)

# Line editing and history on a terminal (libedit's readline interface).
EDIT_CFLAGS := $(shell pkg-config --cflags libedit 2>/dev/null)
EDIT_LIBS   := $(shell pkg-config --libs libedit 2>/dev/null)

PROGS += $(BUILD)/chatcli

$(CLIENT_LIB): $(CLIENT_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CHATCLI_OBJ): CFLAGS += $(EDIT_CFLAGS)

$(BUILD)/chatcli: $(CHATCLI_OBJ) $(CLIENT_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(EDIT_LIBS)

# The generic rule links only $(LIB); the client library's suites need both.
$(BUILD)/tests/check_wsc $(BUILD)/tests/check_httpc $(BUILD)/tests/check_conn: $(BUILD)/tests/%: tests/unit/%.c $(CLIENT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $< $(CLIENT_LIB) $(LIB) $(PKG_LIBS) $(CHECK_LIBS)

-include $(CLIENT_OBJ:.o=.d) $(CHATCLI_OBJ:.o=.d)
