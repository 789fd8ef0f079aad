#include <stddef.h>

const char *zlibVersion(void) { return "1.3.1"; }

unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len) {
  if (buf == NULL) return 0;
  crc = ~crc & 0xffffffffUL;
  for (unsigned int i = 0; i < len; i++) {
    crc ^= buf[i];
    for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xedb88320UL & (0UL - (crc & 1UL)));
  }
  return ~crc & 0xffffffffUL;
}
