#include <rocblas/rocblas.h>
#include <stdio.h>

int main(void) {
  char version[64];
  unsigned long crc = 0;
  if (rocblas_get_version_string(version, sizeof version) != rocblas_status_success) return 1;
  if (rocblas_sample_checksum("123456789", 9, &crc) != rocblas_status_success) return 1;
  printf("rocBLAS %s\nchecksum %s\n", version, crc == 0xcbf43926UL ? "ok" : "WRONG");
  return crc != 0xcbf43926UL;
}
