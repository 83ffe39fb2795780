/* chatd's version, shown by --version, chatadm status and /metrics. */
#ifndef CH_VERSION_H
#define CH_VERSION_H

#define CH_VERSION "0.1.0"

#endif
