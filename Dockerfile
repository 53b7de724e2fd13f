FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir -c requirements.lock -e .
EXPOSE 8000
CMD ["chainlens", "serve", "--host", "0.0.0.0"]
