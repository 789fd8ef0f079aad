/* Entry point of the sample executables. glibc >= 2.34 ships a crt1.o that needs
   __libc_start_main@GLIBC_2.34; binding the GLIBC_2.2.5 version keeps every sample file within
   the manylinux_2_28 floor TheRock builds for, whatever glibc the generator runs on. */
__asm__(
    ".symver __libc_start_main, __libc_start_main@GLIBC_2.2.5\n"
    ".text\n"
    ".globl _start\n"
    ".type _start, @function\n"
    "_start:\n"
    "  xorl %ebp, %ebp\n"
    "  movq %rdx, %r9\n"
    "  popq %rsi\n"
    "  movq %rsp, %rdx\n"
    "  andq $-16, %rsp\n"
    "  pushq %rax\n"
    "  pushq %rsp\n"
    "  xorl %r8d, %r8d\n"
    "  xorl %ecx, %ecx\n"
    "  leaq main(%rip), %rdi\n"
    "  call *__libc_start_main@GOTPCREL(%rip)\n"
    "  hlt\n"
    ".size _start, . - _start\n");
