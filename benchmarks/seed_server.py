"""The assignment's sample server (shared/seed/000_a4ee4f1dd2ea853c.txt), made runnable.

The assignment gives the server as Markdown fragments, not a file, so its code is copied
here as written. Only two things were added so the load generator can run it: the port
comes from the command line (the sample hard-codes 8080) and ``main()`` is called. Its
bugs are kept on purpose; they are what the benchmark shows (see benchmarks/README.md):
one ``recv(1024)`` per message, so messages split and merge; a relay loop over a dict
that other threads change; a closed client spinning on empty reads; and one slow
receiver blocking every sender.
"""
# ruff: noqa
# mypy: ignore-errors
# fmt: off

import socket
import sys
import threading

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
clients = {}


def main():

    global PORT
    global clients

    server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server_socket.bind(('localhost', PORT))
    server_socket.listen(5)

    while True:
        client_socket, (client_host, client_port) = server_socket.accept()
        client_socket.send(b'Enter your nickname: ')
        nick = client_socket.recv(1024).decode('utf-8')
        clients[client_socket] = nick
        thread = threading.Thread(target=chat, args=(client_socket,))
        thread.start()


def chat(client_socket):
    global clients

    while True:
        mail = client_socket.recv(1024).decode('utf-8')
        for sock in clients.keys():
            sock.send(f'{clients[client_socket]} send: {mail}'.encode('utf-8'))


if __name__ == "__main__":
    main()
# fmt: on
