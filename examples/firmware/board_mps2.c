/* board_mps2.c - board.h on QEMU's mps2-an386: CMSDK APB UART0 for output, CMSDK APB timer 0
   as the tick counter, Arm semihosting to stop QEMU. */
#include "board.h"

#define REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* CMSDK APB UART0 */
#define UART0_DATA    REG(0x40004000u)
#define UART0_STATE   REG(0x40004004u) /* bit 0: transmit buffer full */
#define UART0_CTRL    REG(0x40004008u) /* bit 0: transmit enable */
#define UART0_BAUDDIV REG(0x40004010u)

/* CMSDK APB timer 0: a 32-bit down-counter clocked at 25 MHz */
#define TIMER0_CTRL   REG(0x40000000u) /* bit 0: enable */
#define TIMER0_VALUE  REG(0x40000004u)
#define TIMER0_RELOAD REG(0x40000008u)

void board_init(void) {
    UART0_BAUDDIV = 16; /* the smallest divider the UART accepts */
    UART0_CTRL = 1;
    TIMER0_CTRL = 0;
    TIMER0_RELOAD = 0xffffffffu;
    TIMER0_VALUE = 0xffffffffu;
    TIMER0_CTRL = 1;
}

void board_putc(char c) {
    while (UART0_STATE & 1u) {}
    UART0_DATA = (uint32_t)(unsigned char)c;
}

uint32_t board_ticks(void) { return 0xffffffffu - TIMER0_VALUE; }

void board_spin(uint32_t n) {
    if (n) __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
}

/* Semihosting SYS_EXIT (0x18); on 32-bit Arm its argument is the reason itself.
   ADP_Stopped_ApplicationExit makes QEMU exit with status 0, any other reason with 1. */
void board_exit(int code) {
    register uint32_t r0 __asm__("r0") = 0x18u;
    register uint32_t r1 __asm__("r1") = code == 0 ? 0x20026u : 0x20023u;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {}
}
