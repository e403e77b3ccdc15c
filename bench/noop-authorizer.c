/*
 * noop-authorizer: a FastCGI authorizer that allows every request at once.
 *
 * It is the floor of any authorizer's cost in the benchmark (SPEC §10): the
 * web server still opens a FastCGI connection and waits for an answer, but
 * nothing is parsed, looked up or written.  The black-box harness uses it too,
 * to test the web-server wiring before the real programs exist.  The answer
 * carries one variable so that tests can see it reach the backend.
 */
#include <fcgiapp.h>

static const char answer[] = "Status: 200 OK\r\n"
			     "Variable-SYNCGATE_USER: noop\r\n"
			     "\r\n";

int
main(void)
{
	FCGX_Request req;

	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(answer, (int)sizeof(answer) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
