# chatadm, the admin client (admin/), and what `make install` adds for it:
# the binary and the systemd unit. See admin/commands.h for the command
# table it shares with the master's admin socket (master/admin.c).

ADMIN_SRC := $(wildcard admin/*.c)
ADMIN_OBJ := $(ADMIN_SRC:%.c=$(BUILD)/%.o)

PROGS += $(BUILD)/chatadm

$(BUILD)/chatadm: $(ADMIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# chatadm's output formatting is tested on its own: its test links the
# renderer beside the library (the pattern rule links the library only).
$(BUILD)/tests/check_admin_render: tests/unit/check_admin_render.c $(BUILD)/admin/render.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/admin/render.o $(LIB) $(PKG_LIBS) $(CHECK_LIBS)

# The unit is written for PREFIX=/usr/local and SYSCONFDIR=/etc/chatd; other
# places are substituted. A configuration for the unit's directories is
# written only if none exists: an administrator's file is never replaced.
.PHONY: install-admin
install: install-admin
install-admin: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)
	install -m 0755 $(BUILD)/chatadm $(DESTDIR)$(SBINDIR)/chatadm
	sed -e 's|/usr/local/sbin|$(SBINDIR)|g' -e 's|/etc/chatd|$(SYSCONFDIR)|g' \
		conf/chatd.service > $(DESTDIR)$(UNITDIR)/chatd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/chatd.service
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/chatd.conf ]; then \
		printf '%s\n' '; chatd under systemd (chatd.service); every key: chatd.conf.example' \
			'[server]' 'data_dir = /var/lib/chatd' 'web_root = $(DATADIR)/www' \
			'[admin]' 'socket = /run/chatd/chatd.sock' \
			> $(DESTDIR)$(SYSCONFDIR)/chatd.conf; \
		chmod 0644 $(DESTDIR)$(SYSCONFDIR)/chatd.conf; \
		echo "wrote $(DESTDIR)$(SYSCONFDIR)/chatd.conf"; \
	fi

-include $(ADMIN_OBJ:.o=.d)
